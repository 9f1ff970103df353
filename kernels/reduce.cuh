// Reductions on device: whole-tensor sums (double accumulation, deterministic two-pass tree, no
// atomics) and the per-feature bias gradient.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
// Number of doubles of scratch sum() needs (block partials + the result).
int64_t sumScratch(int64_t n);
// out[0] = sum of x (squares == false) or of x^2, in double. `scratch` holds sumScratch(n)
// doubles; out may point into it. Asynchronous: copy out back and synchronise to read it.
void sum(const float* x, int64_t n, bool squares, double* scratch, double* out, cudaStream_t s);
// db[f] (+)= sum over i and spatial of dy[i, f, spatial]; one block per feature, fixed order.
void biasGrad(const float* dy, float* db, int64_t n, int64_t features, int64_t spatial,
              bool accumulate, cudaStream_t s);
}  // namespace sw::kernels
