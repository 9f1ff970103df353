// Elementwise activations forward/backward on device (ReLU, ELU, Tanh, Sigmoid). `act` uses the
// numbering of sw::Act in src/backend/Backend.h (0 identity, 1 relu, 2 elu, 3 tanh, 4 sigmoid).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
void actForward(int act, float alpha, const float* x, float* y, int64_t n, cudaStream_t s);
// Backward reads x (ELU) and/or y (the others), like the CPU backend.
void actBackward(int act, float alpha, const float* x, const float* y, const float* dy, float* dx,
                 int64_t n, cudaStream_t s);
}  // namespace sw::kernels
