// Fused optimizer kernels: one pass over param/grad/state per tensor, bias corrections computed
// once on the host in double (as the CPU backend does) so both backends round alike.
#include <cmath>

#include "kernels/common.cuh"
#include "kernels/optimizer.cuh"

namespace sw::kernels {
namespace {

__global__ void sgd_update_kernel(float* __restrict__ p, const float* __restrict__ g,
                                  float* __restrict__ buf, int64_t n, SgdArgs a) {
  const float damp = 1.f - a.dampening;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float d = g[i] + a.weightDecay * p[i];
    if (buf) {
      const float b = a.firstStep ? d : a.momentum * buf[i] + damp * d;
      buf[i] = b;
      d = a.nesterov ? d + a.momentum * b : b;
    }
    p[i] -= a.lr * d;
  }
}

__global__ void adam_update_kernel(float* __restrict__ p, const float* __restrict__ g,
                                   float* __restrict__ m, float* __restrict__ v,
                                   float* __restrict__ vmax, int64_t n, float b1, float b2,
                                   float eps, float wd, float stepSize, float bc2sqrt) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float d = g[i] + wd * p[i];
    const float mi = b1 * m[i] + (1.f - b1) * d;
    const float vi = b2 * v[i] + (1.f - b2) * d * d;
    m[i] = mi;
    v[i] = vi;
    float vv = vi;
    if (vmax) {
      vv = fmaxf(vmax[i], vi);
      vmax[i] = vv;
    }
    p[i] -= stepSize * mi / (sqrtf(vv) / bc2sqrt + eps);
  }
}

}  // namespace

void sgdUpdate(float* param, const float* grad, float* buf, int64_t n, const SgdArgs& a,
               cudaStream_t s) {
  sgd_update_kernel<<<gridFor(n), 256, 0, s>>>(param, grad, a.momentum != 0.f ? buf : nullptr, n, a);
  SW_KCHECK(cudaGetLastError());
}

void adamUpdate(float* param, const float* grad, float* m, float* v, float* vmax, int64_t n,
                const AdamArgs& a, cudaStream_t s) {
  const double bc1 = 1.0 - std::pow(double(a.beta1), double(a.step));
  const double bc2 = 1.0 - std::pow(double(a.beta2), double(a.step));
  adam_update_kernel<<<gridFor(n), 256, 0, s>>>(param, grad, m, v, a.amsgrad ? vmax : nullptr, n,
                                                a.beta1, a.beta2, a.eps, a.weightDecay,
                                                float(a.lr / bc1), float(std::sqrt(bc2)));
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
