// Additive coupling of reversible networks on device (src/nn/Reversible.h): a channel pair
// x = (x1, x2) of [n, 2C, spatial] and f [n, C, spatial] in one pass, instead of a split, an axpy
// and a concatenation.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
enum class CouplingDir { kForward, kInverse };
// kForward: out = (x2 + f, x1); kInverse: out = (x2, x1 - f). `half` = C * spatial per sample.
void coupling(CouplingDir dir, const float* x, const float* f, float* out, int64_t n, int64_t half,
              cudaStream_t s);
}  // namespace sw::kernels
