// Activation kernels: one grid-stride kernel per direction, the function chosen by a
// compile-time template argument so each instantiation is branch-free.
#include "kernels/activation.cuh"
#include "kernels/common.cuh"

namespace sw::kernels {
namespace {

template <int A>
__global__ void act_forward_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t n,
                                   float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    if (A == 0) y[i] = v;
    if (A == 1) y[i] = v > 0.f ? v : 0.f;
    if (A == 2) y[i] = v > 0.f ? v : alpha * expm1f(v);
    if (A == 3) y[i] = tanhf(v);
    if (A == 4) y[i] = 1.f / (1.f + expf(-v));
  }
}

template <int A>
__global__ void act_backward_kernel(const float* __restrict__ x, const float* __restrict__ y,
                                    const float* __restrict__ dy, float* __restrict__ dx,
                                    int64_t n, float alpha) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float g = dy[i];
    if (A == 0) dx[i] = g;
    if (A == 1) dx[i] = y[i] > 0.f ? g : 0.f;
    if (A == 2) dx[i] = x[i] > 0.f ? g : g * (y[i] + alpha);
    if (A == 3) dx[i] = g * (1.f - y[i] * y[i]);
    if (A == 4) dx[i] = g * y[i] * (1.f - y[i]);
  }
}

}  // namespace

void actForward(int act, float alpha, const float* x, float* y, int64_t n, cudaStream_t s) {
  const unsigned g = gridFor(n);
  switch (act) {
    case 0: act_forward_kernel<0><<<g, 256, 0, s>>>(x, y, n, alpha); break;
    case 1: act_forward_kernel<1><<<g, 256, 0, s>>>(x, y, n, alpha); break;
    case 2: act_forward_kernel<2><<<g, 256, 0, s>>>(x, y, n, alpha); break;
    case 3: act_forward_kernel<3><<<g, 256, 0, s>>>(x, y, n, alpha); break;
    case 4: act_forward_kernel<4><<<g, 256, 0, s>>>(x, y, n, alpha); break;
    default: throw std::runtime_error("actForward: unknown activation " + std::to_string(act));
  }
  SW_KCHECK(cudaGetLastError());
}

void actBackward(int act, float alpha, const float* x, const float* y, const float* dy, float* dx,
                 int64_t n, cudaStream_t s) {
  const unsigned g = gridFor(n);
  switch (act) {
    case 0: act_backward_kernel<0><<<g, 256, 0, s>>>(x, y, dy, dx, n, alpha); break;
    case 1: act_backward_kernel<1><<<g, 256, 0, s>>>(x, y, dy, dx, n, alpha); break;
    case 2: act_backward_kernel<2><<<g, 256, 0, s>>>(x, y, dy, dx, n, alpha); break;
    case 3: act_backward_kernel<3><<<g, 256, 0, s>>>(x, y, dy, dx, n, alpha); break;
    case 4: act_backward_kernel<4><<<g, 256, 0, s>>>(x, y, dy, dx, n, alpha); break;
    default: throw std::runtime_error("actBackward: unknown activation " + std::to_string(act));
  }
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
