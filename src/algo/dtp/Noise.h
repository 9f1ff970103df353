// Counter-keyed Gaussian noise for L-DRL (spec seed-dtp.md 4.4 and 7 E1): every noise tensor is a
// pure function of (seed, step, layer, iteration, sample, which tensor), so sequential and
// layer-parallel DTP draw the same numbers whatever rank trains a layer, in whatever order, on
// however many threads, and a resumed run draws what an uninterrupted one would.
#pragma once
#include <cstdint>

#include "core/Tensor.h"

namespace sw::dtp {

enum class NoiseTensor : uint64_t { kDx = 0, kDy = 1 };

struct NoiseKey {
  uint64_t seed = 0;
  int64_t step = 0;     // forward optimizer steps done before this batch
  int layer = 0;        // feedback block index i (G_i)
  int iteration = 0;    // 0 .. K_i - 1
  int sample = 0;       // 0 .. feedback_samples - 1
  NoiseTensor which = NoiseTensor::kDx;
  uint64_t hash() const;
};

// out = sigma * N(0, 1), elementwise, host tensor. Generated in fixed chunks each seeded from
// (key, chunk index), so the values do not depend on the OpenMP thread count.
void fillNormal(Tensor& out, float sigma, const NoiseKey& key);

}  // namespace sw::dtp
