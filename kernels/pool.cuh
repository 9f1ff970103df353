// Pooling on device over NCHW planes: max pooling with argmax indices (the Backend returns them,
// which cuDNN does not), max unpooling, average pooling (padding counted in the divisor) and
// adaptive average pooling (PyTorch bins). Backward passes gather per input element instead of
// scattering per output, so no atomics are needed and each input sums its contributions in the
// same order as the CPU backend's scatter loop.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {

struct PoolDims {
  int64_t planes = 0;  // n * c
  int64_t h = 0, w = 0, oh = 0, ow = 0;
  int64_t kernel = 2, stride = 2, pad = 0;
};

// y = window max, idx = flat h*w index of the first maximum (NaN wins) inside its plane.
void maxPoolForward(const float* x, float* y, int32_t* idx, const PoolDims& d, cudaStream_t s);
// dx[p, q] = sum of dy[p, o] over outputs o with idx[p, o] == q; idx must come from
// maxPoolForward with the same dims (each index inside its window). Also max-unpool forward.
void maxPoolBackward(const float* dy, const int32_t* idx, float* dx, const PoolDims& d,
                     cudaStream_t s);
// dx[p, o] = dy[p, idx[p, o]]: max-unpool backward (dy has the pool's input shape).
void maxUnpoolBackward(const float* dy, const int32_t* idx, float* dx, const PoolDims& d,
                       cudaStream_t s);
void avgPoolForward(const float* x, float* y, const PoolDims& d, cudaStream_t s);
void avgPoolBackward(const float* dy, float* dx, const PoolDims& d, cudaStream_t s);
// Adaptive average pooling [planes, h, w] -> [planes, oh, ow] (kernel/stride/pad unused).
void adaptiveAvgPoolForward(const float* x, float* y, const PoolDims& d, cudaStream_t s);
void adaptiveAvgPoolBackward(const float* dy, float* dx, const PoolDims& d, cudaStream_t s);

}  // namespace sw::kernels
