// Seeded test inputs shared by the unit and CUDA tests: normal values and class labels drawn from
// sw::Rng, so a seed gives the same tensor in every test binary.
#pragma once
#include <cstdint>

#include "core/Rng.h"
#include "core/Tensor.h"

namespace sw::testdata {

inline Tensor randn(const Shape& s, uint64_t seed, float scale = 1.f) {
  Rng r(seed);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = scale * r.normal();
  return t;
}

// int32 labels in [0, k), n of them.
inline Tensor labelsFor(int64_t n, int64_t k, uint64_t seed) {
  Rng r(seed);
  Tensor t = Tensor::empty(Shape{n});
  for (int64_t i = 0; i < n; ++i) t.data<int32_t>()[i] = static_cast<int32_t>(r.below(k));
  return t;
}

}  // namespace sw::testdata
