// channelSum: the per-channel reduction the CPU backend's bias gradient and batch-norm statistics
// share (one loop, so both reduce in the same order).
#pragma once
#include <cstdint>

namespace sw::detail {

// Sum over samples and positions of channel j of an [n, c, sp] tensor of f(value): float within
// a plane (vectorised), double across planes.
template <class F>
double channelSum(const float* p, int64_t n, int64_t c, int64_t j, int64_t sp, F f) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* q = p + (i * c + j) * sp;
    float t = 0;
#pragma omp simd reduction(+ : t)
    for (int64_t k = 0; k < sp; ++k) t += f(q[k]);
    s += t;
  }
  return s;
}
inline float identity(float v) { return v; }

}  // namespace sw::detail
