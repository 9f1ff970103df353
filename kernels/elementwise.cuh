// Elementwise device ops behind CudaBackend: fill, add, mul, axpy, scale and the per-feature bias
// add. Grid-stride loops over n floats; every launcher checks the launch and returns at once.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
void fill(float* p, float v, int64_t n, cudaStream_t s);
void add(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);
void mul(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);
void axpy(float alpha, const float* x, float* y, int64_t n, cudaStream_t s);  // y += alpha x
void scale(float* x, float alpha, int64_t n, cudaStream_t s);
// y[i, f, sp] += bias[f] for y [n, features, spatial].
void addBias(float* y, const float* bias, int64_t n, int64_t features, int64_t spatial,
             cudaStream_t s);
}  // namespace sw::kernels
