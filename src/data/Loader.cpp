// BatchLoader: epoch permutation, shard striding, and the per-sample pipeline run in fill():
// central pad -> random crop -> horizontal flip -> scale to [0, 1] -> per-channel normalisation.
// Padding is zero in [0, 1] pixel space, so after normalisation pad pixels read -mean / std, as in
// torchvision's pad-then-ToTensor-then-Normalize.
#include "data/Loader.h"

#include <algorithm>
#include <numeric>

#include "core/Error.h"
#include "core/Rng.h"

namespace sw {
namespace {
// Keeps the augmentation streams apart from the permutation stream Rng::derive(seed, epoch).
constexpr uint64_t kAugmentTag = 0xA06E'17A7'10E5'0000ull;

// One output plane [outH, outW] from a source plane [h, w]. Source pixel (y + dy, x' + dx) lands at
// (y, x) where x' = x, or outW - 1 - x when flipped; pixels from outside the source take `pad`.
// T is uint8_t or float; `scale` already includes the 1/255 for bytes.
template <class T>
void renderPlane(const T* src, int64_t h, int64_t w, float* dst, int64_t outH, int64_t outW, int64_t dy,
                 int64_t dx, bool flip, float scale, float pad) {
  for (int64_t y = 0; y < outH; ++y) {
    float* row = dst + y * outW;
    const int64_t sy = y + dy;
    if (sy < 0 || sy >= h) {
      std::fill(row, row + outW, pad);
      continue;
    }
    const T* s = src + sy * w;
    // Valid x: 0 <= sx < w, with sx = x + dx, or outW - 1 - x + dx when flipped.
    int64_t lo, hi;
    if (!flip) {
      lo = std::max<int64_t>(0, -dx);
      hi = std::min<int64_t>(outW, w - dx);
    } else {
      lo = std::max<int64_t>(0, outW + dx - w);
      hi = std::min<int64_t>(outW, outW + dx);
    }
    if (hi <= lo) {
      std::fill(row, row + outW, pad);
      continue;
    }
    std::fill(row, row + lo, pad);
    std::fill(row + hi, row + outW, pad);
    if (!flip) {
      for (int64_t x = lo; x < hi; ++x) row[x] = float(s[x + dx]) * scale + pad;
    } else {
      const int64_t e = outW - 1 + dx;
      for (int64_t x = lo; x < hi; ++x) row[x] = float(s[e - x]) * scale + pad;
    }
  }
}

// The same mapping with replicate ("edge") padding: source coordinates are clamped into the image,
// as torchvision's RandomCrop(padding_mode="edge") does (DTP's CIFAR-10 recipe).
template <class T>
void renderPlaneEdge(const T* src, int64_t h, int64_t w, float* dst, int64_t outH, int64_t outW, int64_t dy,
                     int64_t dx, bool flip, float scale, float bias) {
  for (int64_t y = 0; y < outH; ++y) {
    const T* s = src + std::clamp<int64_t>(y + dy, 0, h - 1) * w;
    float* row = dst + y * outW;
    for (int64_t x = 0; x < outW; ++x) {
      const int64_t sx = std::clamp<int64_t>(flip ? outW - 1 - x + dx : x + dx, 0, w - 1);
      row[x] = float(s[sx]) * scale + bias;
    }
  }
}

// Reuses the previous batch's buffer when nobody else holds it and the shape is unchanged: no
// allocation per batch in the steady state.
void ensure(Tensor& t, const Shape& s) {
  if (t.defined() && t.shape() == s && t.device().isCpu() && t.storage().use_count() == 1) return;
  t = Tensor::empty(s);
}
}  // namespace

BatchLoader::BatchLoader(const Dataset& data, int64_t batchSize, uint64_t seed, Shard shard, AugmentSpec aug,
                         Shuffle shuffle, DropLast dropLast, Augment augment, int64_t globalBatch)
    : data_(data),
      batchSize_(batchSize),
      seed_(seed),
      shard_(shard),
      aug_(std::move(aug)),
      shuffle_(shuffle),
      dropLast_(dropLast),
      augment_(augment) {
  if (batchSize_ <= 0) throw ConfigError("batch size must be positive, got " + std::to_string(batchSize_));
  if (shard_.count < 1 || shard_.index < 0 || shard_.index >= shard_.count)
    throw ConfigError("bad data shard " + std::to_string(shard_.index) + " of " + std::to_string(shard_.count));
  const Shape& s = data_.sample;
  if (s.rank() == 0 || s.numel() <= 0) throw DataError(data_.source + ": bad sample shape " + s.str());
  if (int64_t(data_.isU8() ? data_.u8.size() : data_.f32.size()) != data_.size() * s.numel())
    throw DataError(data_.source + ": pixel count does not match " + std::to_string(data_.size()) +
                    " samples of " + s.str());

  const bool image = s.rank() == 3;
  if (image) {
    c_ = s[0], h_ = s[1], w_ = s[2];
  } else {
    w_ = s.numel();
    if (aug_.padTo || aug_.cropPad || aug_.hflip)
      throw ConfigError("padding, cropping and flipping need image samples [C,H,W], not " + s.str());
  }
  outH_ = h_, outW_ = w_;
  if (aug_.padTo > 0) {
    if (aug_.padTo < h_ || aug_.padTo < w_)
      throw ConfigError("data.pad_to = " + std::to_string(aug_.padTo) + " is smaller than the images " + s.str());
    outH_ = outW_ = aug_.padTo;
  }
  if (aug_.cropPad < 0) throw ConfigError("data.crop_pad must be >= 0");
  if (aug_.cropEdge && aug_.padTo > 0)
    throw ConfigError("data.crop_mode = edge replicates the image border and cannot be combined with data.pad_to");
  outSample_ = image ? Shape{c_, outH_, outW_} : s;

  // Channel count is C for images, 1 otherwise.
  scale_.assign(static_cast<size_t>(c_), 1.f);
  bias_.assign(static_cast<size_t>(c_), 0.f);
  if (!aug_.mean.empty() || !aug_.stddev.empty()) {
    if (int64_t(aug_.mean.size()) != c_ || int64_t(aug_.stddev.size()) != c_)
      throw ConfigError("data.mean and data.std need " + std::to_string(c_) + " values (one per channel of " +
                        s.str() + "), got " + std::to_string(aug_.mean.size()) + " and " +
                        std::to_string(aug_.stddev.size()));
    for (int64_t k = 0; k < c_; ++k) {
      if (!(aug_.stddev[k] > 0)) throw ConfigError("data.std values must be positive");
      scale_[k] = 1.f / aug_.stddev[k];
      bias_[k] = -aug_.mean[k] / aug_.stddev[k];
    }
  }
  // Every shard runs the same number of batches per epoch (they are counted over all shards);
  // the shards' shares of a batch differ by at most one sample.
  const int64_t n = shard_.count, r = shard_.index, used = data_.size();
  global_ = globalBatch > 0 ? globalBatch : batchSize_ * n;
  auto share = [&](int64_t rows) { return rows > r ? (rows - r + n - 1) / n : 0; };
  if (share(global_) != batchSize_)
    throw ConfigError("data shard " + std::to_string(r) + " of " + std::to_string(n) + ": a batch of " +
                      std::to_string(global_) + " gives it " + std::to_string(share(global_)) + " samples, not " +
                      std::to_string(batchSize_));
  batches_ = dropLast_ == DropLast::kYes ? used / global_ : (used + global_ - 1) / global_;
  // A last partial batch smaller than the shard count would leave a shard without a sample.
  if (dropLast_ == DropLast::kNo && used % global_ != 0 && used % global_ < n) --batches_;
  shardRows_ = 0;
  for (int64_t k = 0; k < batches_; ++k) shardRows_ += share(globalRows(k));
}

int64_t BatchLoader::globalRows(int64_t k) const { return std::min(global_, data_.size() - k * global_); }

int64_t BatchLoader::shardSize() const { return shardRows_; }

int64_t BatchLoader::batchesPerEpoch() const { return batches_; }

Shape BatchLoader::sampleShape() const { return outSample_; }

void BatchLoader::buildOrder(int epoch) {
  const int64_t n = data_.size();
  perm_.resize(static_cast<size_t>(n));
  std::iota(perm_.begin(), perm_.end(), int64_t{0});
  if (shuffle_ == Shuffle::kYes) {
    Rng r = Rng::derive(seed_, static_cast<uint64_t>(epoch));
    for (int64_t i = n - 1; i > 0; --i) std::swap(perm_[i], perm_[r.below(static_cast<uint64_t>(i + 1))]);
  }
  // A dropped last batch leaves different samples out each epoch. This shard's samples of batch k follow those of batch k-1 (every full batch has the same share).
  order_.clear();
  order_.reserve(static_cast<size_t>(shardRows_));
  for (int64_t k = 0; k < batches_; ++k) {
    const int64_t start = k * global_, rows = globalRows(k);
    for (int64_t j = shard_.index; j < rows; j += shard_.count) order_.push_back(perm_[size_t(start + j)]);
  }
  augSeed_ = Rng::derive(seed_ ^ kAugmentTag, static_cast<uint64_t>(epoch)).next();
  epoch_ = epoch;
}

void BatchLoader::seek(int epoch, int64_t batch) {
  if (epoch < 0) throw InputError("loader: negative epoch " + std::to_string(epoch));
  if (batch < 0 || batch > batchesPerEpoch())
    throw InputError("loader: batch " + std::to_string(batch) + " is outside epoch of " +
                     std::to_string(batchesPerEpoch()) + " batches (checkpoint from another batch size?)");
  if (epoch != epoch_) buildOrder(epoch);
  batch_ = batch;
}

bool BatchLoader::next(Batch& out) {
  if (epoch_ < 0) seek(0, 0);
  if (batch_ >= batchesPerEpoch()) return false;
  const int64_t first = batch_ * batchSize_;
  fill(first, std::min(batchSize_, shardRows_ - first), out);
  ++batch_;
  return true;
}

void BatchLoader::fill(int64_t firstPos, int64_t count, Batch& out) const {
  std::vector<int64_t> dims{count};
  dims.insert(dims.end(), outSample_.dims().begin(), outSample_.dims().end());
  ensure(out.x, Shape(std::move(dims)));
  ensure(out.labels, Shape{count});

  const bool augment = augment_ == Augment::kYes && (aug_.cropPad > 0 || aug_.hflip);
  const int64_t per = data_.sample.numel(), outPer = c_ * outH_ * outW_;
  // Central padding: the source sits at offset ((outH - h) / 2, (outW - w) / 2).
  const int64_t offY = (outH_ - h_) / 2, offX = (outW_ - w_) / 2;
  const bool u8 = data_.isU8();
  float* x = out.x.data();
  int32_t* labels = out.labels.data<int32_t>();

  // Single-threaded below ~1M values: a 128x3x32x32 batch takes ~0.2 ms on one core, and
  // waking OpenMP threads that compete with other ranks costs more than it saves.
#pragma omp parallel for schedule(static) if (count * outPer >= (1 << 20))
  for (int64_t b = 0; b < count; ++b) {
    const int64_t idx = order_[static_cast<size_t>(firstPos + b)];
    labels[b] = data_.labels[static_cast<size_t>(idx)];
    int64_t dy = 0, dx = 0;
    bool flip = false;
    if (augment) {
      // Keyed by the sample index, not the batch position or shard: the same sample gets the same
      // crop and flip in an epoch whatever the batch size or rank count.
      Rng r = Rng::derive(augSeed_, static_cast<uint64_t>(idx));
      if (aug_.cropPad > 0) {
        dy = static_cast<int64_t>(r.below(static_cast<uint64_t>(2 * aug_.cropPad + 1))) - aug_.cropPad;
        dx = static_cast<int64_t>(r.below(static_cast<uint64_t>(2 * aug_.cropPad + 1))) - aug_.cropPad;
      }
      if (aug_.hflip) flip = (r.next() >> 63) != 0;
    }
    for (int64_t k = 0; k < c_; ++k) {
      float* dst = x + b * outPer + k * outH_ * outW_;
      const int64_t plane = idx * per + k * h_ * w_;
      if (aug_.cropEdge && augment) {
        if (u8)
          renderPlaneEdge(data_.u8.data() + plane, h_, w_, dst, outH_, outW_, dy, dx, flip, scale_[k] * (1.f / 255.f),
                          bias_[k]);
        else
          renderPlaneEdge(data_.f32.data() + plane, h_, w_, dst, outH_, outW_, dy, dx, flip, scale_[k], bias_[k]);
      } else if (u8)
        renderPlane(data_.u8.data() + plane, h_, w_, dst, outH_, outW_, dy - offY, dx - offX, flip,
                    scale_[k] * (1.f / 255.f), bias_[k]);
      else
        renderPlane(data_.f32.data() + plane, h_, w_, dst, outH_, outW_, dy - offY, dx - offX, flip,
                    scale_[k], bias_[k]);
    }
  }
}

}  // namespace sw
