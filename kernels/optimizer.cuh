// Fused optimizer updates on device with PyTorch semantics (see src/optim/Optimizer.h):
// SGD (momentum, dampening, Nesterov, L2 weight decay), Adam (AMSGrad, L2 weight decay) and LARS
// (LARC's clipped trust ratio, then SGD with momentum).
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
// LARS: sgd.weightDecay is applied inside the clipping, the SGD step runs without it.
struct LarsArgs {
  SgdArgs sgd;
  float trust, eps;
};
// Doubles of scratch larsUpdate needs (the two norms' reductions and their results).
int64_t larsScratch(int64_t n);
// |W| and |g| by two deterministic reductions into `scratch`, then one pass that clips grad in
// place (when both norms are non-zero) and takes the SGD step. Nothing returns to the host.
void larsUpdate(float* param, float* grad, float* buf, int64_t n, const LarsArgs& a,
                double* scratch, cudaStream_t s);
}  // namespace sw::kernels
