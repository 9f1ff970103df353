// Shared helpers for kernels/: error checking after launches and grid sizing.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace sw::kernels {

// Throws std::runtime_error naming the CUDA call and location (caught and re-typed by callers).
inline void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error ") + cudaGetErrorString(e) + " in " + what +
                             " at " + file + ":" + std::to_string(line));
}
#define SW_KCHECK(expr) ::sw::kernels::check((expr), #expr, __FILE__, __LINE__)

// Grid-stride loops: enough blocks to fill the device, capped so launch cost stays small.
inline unsigned gridFor(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

}  // namespace sw::kernels

// Grid-stride loop over [0, n) with a 64-bit index (tensors beyond 2^31 elements are real).
#define SW_GRID_LOOP(i, n)                                                                  \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n);               \
       i += int64_t(gridDim.x) * blockDim.x)

