// Fused optimizer updates on device with PyTorch semantics (see src/optim/Optimizer.h):
// SGD (momentum, dampening, Nesterov, L2 weight decay) and Adam (AMSGrad, L2 weight decay).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
struct SgdArgs {
  float lr, momentum, dampening, weightDecay;
  bool nesterov, firstStep;
};
void sgdUpdate(float* param, const float* grad, float* buf, int64_t n, const SgdArgs& a,
               cudaStream_t s);
struct AdamArgs {
  float lr, beta1, beta2, eps, weightDecay;
  bool amsgrad;
  int64_t step;  // 1-based
};
void adamUpdate(float* param, const float* grad, float* m, float* v, float* vmax, int64_t n,
                const AdamArgs& a, cudaStream_t s);
}  // namespace sw::kernels
