// Synthetic classification task for tests and smoke runs without data files: every class has a
// fixed blocky prototype image; a sample is its class prototype at a random contrast plus gaussian
// noise, clipped to [0, 1]. A small MLP or LeNet separates the classes well above 90%.
#include <algorithm>

#include "core/Error.h"
#include "core/Rng.h"
#include "data/Dataset.h"

namespace sw {
namespace {
// The prototypes depend only on (shape, classes), never on the seed: loadData draws train with
// `seed` and test with `seed + 1`, and both splits must come from the same task.
constexpr uint64_t kTaskSeed = 0x5EED7A5C0FFEEull;
constexpr int64_t kCell = 4;          // prototype resolution: constant over 4x4 pixel blocks
constexpr float kNoise = 0.35f;       // per-pixel noise; prototypes differ by ~0.4 per pixel
constexpr float kMinContrast = 0.5f;  // contrast drawn from [kMinContrast, 1]
}  // namespace

Dataset makeSynthetic(int64_t n, const Shape& sample, int64_t classes, uint64_t seed) {
  if (n <= 0) throw ConfigError("synthetic data: sample count must be positive, got " + std::to_string(n));
  if (classes < 2) throw ConfigError("synthetic data: needs at least 2 classes, got " + std::to_string(classes));
  if (sample.rank() == 0 || sample.numel() <= 0)
    throw ConfigError("synthetic data: bad sample shape " + sample.str());
  // View any shape as C planes of H x W: [F] is one row, [H,W] one plane.
  const int64_t w = sample[-1];
  const int64_t h = sample.rank() >= 2 ? sample[-2] : 1;
  const int64_t c = sample.numel() / (h * w);
  const int64_t per = sample.numel();
  const int64_t ch = (h + kCell - 1) / kCell, cw = (w + kCell - 1) / kCell;

  Rng task = Rng::derive(kTaskSeed, static_cast<uint64_t>(classes * 1000003 + per));
  std::vector<float> proto(static_cast<size_t>(classes * per));
  std::vector<float> cells(static_cast<size_t>(ch * cw));
  for (int64_t k = 0; k < classes; ++k)
    for (int64_t p = 0; p < c; ++p) {
      for (float& v : cells) v = task.uniform();
      float* dst = proto.data() + k * per + p * h * w;
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) dst[y * w + x] = cells[(y / kCell) * cw + x / kCell];
    }

  Dataset d;
  d.source = "synthetic";
  d.sample = sample;
  d.classes = classes;
  d.f32.resize(static_cast<size_t>(n * per));
  d.labels.resize(static_cast<size_t>(n));
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const auto label = static_cast<int32_t>(rng.below(static_cast<uint64_t>(classes)));
    const float contrast = rng.uniform(kMinContrast, 1.f);
    const float* src = proto.data() + label * per;
    float* dst = d.f32.data() + i * per;
    for (int64_t j = 0; j < per; ++j)
      dst[j] = std::clamp(contrast * src[j] + kNoise * rng.normal(), 0.f, 1.f);
    d.labels[static_cast<size_t>(i)] = label;
  }
  return d;
}

}  // namespace sw
