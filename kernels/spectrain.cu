// SpecTrain weight prediction (see spectrain.cuh): the direction m B + D, then W - step * it,
// the two multiply-adds of the CPU reference in the same order.
#include "kernels/common.cuh"
#include "kernels/spectrain.cuh"

namespace sw::kernels {
namespace {

__global__ void predict_weights_kernel(const float* __restrict__ w, const float* __restrict__ buf,
                                       const float* __restrict__ lastD, float momentum, float a,
                                       float* __restrict__ out, int64_t n) {
  SW_GRID_LOOP(i, n) {
    float dir = lastD ? lastD[i] : 0.f;
    if (buf) dir += momentum * buf[i];
    out[i] = w[i] + a * dir;
  }
}

}  // namespace

void predictWeights(const float* w, const float* buf, const float* lastD, float momentum,
                    float step, float* out, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  predict_weights_kernel<<<gridFor(n), 256, 0, s>>>(w, buf, lastD, momentum, -step, out, n);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
