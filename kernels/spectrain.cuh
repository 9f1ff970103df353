// SpecTrain weight prediction on device (src/optim/Optimizer.h, seed-spectrain.md 2.2):
// out = w - step (momentum buf + lastD), one pass over the weights and the optimizer's state.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
// buf or lastD may be null (read as zero).
void predictWeights(const float* w, const float* buf, const float* lastD, float momentum,
                    float step, float* out, int64_t n, cudaStream_t s);
}  // namespace sw::kernels
