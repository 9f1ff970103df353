// Vectorised activation loops (see FastMath.h for why this file alone uses -ffast-math).
#include "backend/cpu/FastMath.h"

#include <cmath>

namespace sw::fastmath {

void elu(const float* x, float* y, int64_t n, float alpha) {
#pragma omp parallel for simd if (n > 16384)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float e = alpha * (std::exp(std::fmin(v, 0.f)) - 1.f);
    y[i] = v > 0.f ? v : e;
  }
}

void tanh(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > 16384)
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void sigmoid(const float* x, float* y, int64_t n) {
#pragma omp parallel for simd if (n > 16384)
  for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-x[i]));
}

}  // namespace sw::fastmath
