// BatchLoader: turns a Dataset into deterministic mini-batches. The epoch permutation is a pure
// function of (seed, epoch) and augmentation of (seed, epoch, sample index), so a resumed run
// reproduces the same batches, and every rank computes the same permutation and takes its own
// shard (rank r of w takes positions r, r + w, ... of the permuted order, truncated so all
// shards have equal length).
#pragma once
#include <cstdint>
#include <vector>

#include "core/Tensor.h"
#include "data/Dataset.h"

namespace sw {

struct AugmentSpec {
  int64_t padTo = 0;         // zero-pad images centrally to padTo x padTo (e.g. 28 -> 32)
  int64_t cropPad = 0;       // random crop after zero padding by cropPad (training only)
  bool cropEdge = false;     // pad the crop by replicating the border instead of zeros
  bool hflip = false;        // random horizontal flip with p = 0.5 (training only)
  std::vector<float> mean;   // per-channel normalisation (x - mean) / std, applied after
  std::vector<float> stddev; //   scaling u8 to [0, 1]; empty = none
};

enum class Shuffle { kNo, kYes };
enum class DropLast { kNo, kYes };
enum class Augment { kNo, kYes };  // training applies random crop/flip; evaluation never does

struct Shard {
  int index = 0, count = 1;
};

struct Batch {
  Tensor x;       // host [B, C, H, W] float32
  Tensor labels;  // host [B] int32 (read with data<int32_t>())
  int64_t size() const { return labels.defined() ? labels.numel() : 0; }
};

class BatchLoader {
 public:
  // Batch k of the epoch is positions [kG, (k+1)G) of the epoch's permutation (G = globalBatch,
  // the batch over all shards; 0 = batchSize x shard count); shard r reads those of them whose
  // offset j in the batch has j % count == r: ceil((G - r) / count) rows, so a G that does not
  // divide by the shard count is split as evenly as possible (batchSize must be shard r's share).
  BatchLoader(const Dataset& data, int64_t batchSize, uint64_t seed, Shard shard, AugmentSpec aug,
              Shuffle shuffle, DropLast dropLast, Augment augment, int64_t globalBatch = 0);
  // Samples per epoch in this shard (DropLast::kYes then skips the final partial batch of
  // these), and batches per epoch (the same on every shard: they are counted over all shards; a
  // last partial batch with fewer samples than shards is dropped).
  int64_t shardSize() const;
  int64_t batchesPerEpoch() const;
  // Samples of batch k over all shards (G, or fewer for the epoch's last batch).
  int64_t globalRows(int64_t k) const;
  // Output per-sample shape after padTo.
  Shape sampleShape() const;
  // Positions the loader at batch `batch` of `epoch`.
  void seek(int epoch, int64_t batch);
  // Fills the next batch of the current epoch; false at the end of the epoch.
  bool next(Batch& out);
  int epoch() const { return epoch_; }
  int64_t batchIndex() const { return batch_; }

 private:
  void fill(int64_t firstPos, int64_t count, Batch& out) const;
  void buildOrder(int epoch);
  const Dataset& data_;
  int64_t batchSize_;
  uint64_t seed_;
  Shard shard_;
  AugmentSpec aug_;
  Shuffle shuffle_;
  DropLast dropLast_;
  Augment augment_;
  int epoch_ = -1;
  int64_t batch_ = 0;
  std::vector<int64_t> order_;  // this shard's sample indices for the current epoch
  std::vector<int64_t> perm_;   // scratch: the whole data set's permutation
  int64_t global_ = 0;          // G: samples per batch over all shards
  int64_t shardRows_ = 0;       // this shard's samples per epoch
  int64_t batches_ = 0;         // batches per epoch
  // Sample geometry: C planes of H x W (non-image samples are one plane of 1 x numel), padded size.
  int64_t c_ = 1, h_ = 1, w_ = 1, outH_ = 1, outW_ = 1;
  Shape outSample_;
  std::vector<float> scale_, bias_;  // per channel: x * scale + bias == (x - mean) / std
  uint64_t augSeed_ = 0;             // per-epoch augmentation seed
};

}  // namespace sw
