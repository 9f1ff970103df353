// Parameter initialisers shared by layers (drawn on the host RNG, then moved to the backend).
#pragma once
#include <cmath>

#include "backend/Backend.h"
#include "nn/Layer.h"

namespace sw {

inline Tensor initWeight(Backend& be, const Shape& s, int64_t fanIn, int64_t fanOut, Init init,
                         Rng& rng) {
  Tensor h = Tensor::empty(s);
  float* p = h.data();
  if (init == Init::kNormal001ZeroBias) {
    for (int64_t i = 0; i < h.numel(); ++i) p[i] = 0.01f * rng.normal();
  } else if (init == Init::kKaimingNormalFanOut || init == Init::kKaimingNormalFanOutZeroBias) {
    const float std = std::sqrt(2.f / static_cast<float>(fanOut));
    for (int64_t i = 0; i < h.numel(); ++i) p[i] = std * rng.normal();
  } else {
    const float b = 1.f / std::sqrt(static_cast<float>(fanIn));
    for (int64_t i = 0; i < h.numel(); ++i) p[i] = rng.uniform(-b, b);
  }
  return be.fromHost(h);
}

inline Tensor initBias(Backend& be, int64_t n, int64_t fanIn, Rng& rng, Init init = Init::kPytorchDefault) {
  if (init == Init::kKaimingNormalFanOutZeroBias || init == Init::kNormal001ZeroBias) return be.zeros(Shape{n});
  Tensor h = Tensor::empty(Shape{n});
  const float b = 1.f / std::sqrt(static_cast<float>(fanIn));
  for (int64_t i = 0; i < n; ++i) h.data()[i] = rng.uniform(-b, b);
  return be.fromHost(h);
}

inline Tensor constTensor(Backend& be, const Shape& s, float v) {
  Tensor t = be.empty(s);
  be.fill(t, v);
  return t;
}

}  // namespace sw
