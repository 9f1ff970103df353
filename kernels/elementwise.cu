// Elementwise kernels (see elementwise.cuh). Memory-bound one-liners: one grid-stride loop each.
#include "kernels/common.cuh"
#include "kernels/elementwise.cuh"

namespace sw::kernels {
namespace {

__global__ void fill_kernel(float* p, float v, int64_t n) {
  SW_GRID_LOOP(i, n) p[i] = v;
}
__global__ void add_kernel(const float* a, const float* b, float* o, int64_t n) {
  SW_GRID_LOOP(i, n) o[i] = a[i] + b[i];
}
__global__ void mul_kernel(const float* a, const float* b, float* o, int64_t n) {
  SW_GRID_LOOP(i, n) o[i] = a[i] * b[i];
}
__global__ void axpy_kernel(float alpha, const float* __restrict__ x, float* __restrict__ y,
                            int64_t n) {
  SW_GRID_LOOP(i, n) y[i] += alpha * x[i];
}
__global__ void scale_kernel(float* x, float alpha, int64_t n) {
  SW_GRID_LOOP(i, n) x[i] *= alpha;
}
__global__ void add_bias_kernel(float* __restrict__ y, const float* __restrict__ bias,
                                int64_t total, int64_t features, int64_t spatial) {
  SW_GRID_LOOP(i, total) y[i] += bias[(i / spatial) % features];
}
}  // namespace

void fill(float* p, float v, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  fill_kernel<<<gridFor(n), 256, 0, s>>>(p, v, n);
  SW_KCHECK(cudaGetLastError());
}
void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  add_kernel<<<gridFor(n), 256, 0, s>>>(a, b, out, n);
  SW_KCHECK(cudaGetLastError());
}
void mul(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  mul_kernel<<<gridFor(n), 256, 0, s>>>(a, b, out, n);
  SW_KCHECK(cudaGetLastError());
}
void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  axpy_kernel<<<gridFor(n), 256, 0, s>>>(alpha, x, y, n);
  SW_KCHECK(cudaGetLastError());
}
void scale(float* x, float alpha, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  scale_kernel<<<gridFor(n), 256, 0, s>>>(x, alpha, n);
  SW_KCHECK(cudaGetLastError());
}
void addBias(float* y, const float* bias, int64_t n, int64_t features, int64_t spatial,
             cudaStream_t s) {
  const int64_t total = n * features * spatial;
  if (total == 0) return;
  add_bias_kernel<<<gridFor(total), 256, 0, s>>>(y, bias, total, features, spatial);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
