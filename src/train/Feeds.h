// Feeds: where a round's micro-batches come from. A training round reads consecutive mini-batches
// of a replica's loader and splits each into M micro-batches (rows [p n/M, (p+1) n/M) form
// micro-batch p); an evaluation pass reads the data set's batches, either this replica's shard or,
// for replicas that mirror each other, every P-th batch of the whole set.
#pragma once
#include <map>

#include "data/Loader.h"
#include "schedule/Executor.h"

namespace sw {

class TrainFeed {
 public:
  // `batchRows`: samples per mini-batch of the loader; `firstBatch`: the round's first one.
  // `shards`: replicas whose gradients are averaged (1: each replica's own mean).
  TrainFeed(BatchLoader& loader, int microbatches, int64_t batchRows, int64_t firstBatch, int shards = 1);
  // Sets ri.fetch and ri.rows (the feed must outlive the round), and ri.lossWeight when the
  // micro-batches or the replicas' shares are unequal: micro-batch p of mini-batch k weighs
  // rows(p) x M / rows(k) of this replica's mean, and the replica rows(k) x shards / global(k),
  // so that the average over micro-batches and replicas is the mean over the global batch.
  void into(RoundInputs& ri);

 private:
  int64_t rowsOf(int mb) const;
  BatchLoader& loader_;
  int m_;
  int64_t batchRows_, first_;
  int shards_;
  std::map<int, Batch> fetched_;
  int next_ = 0;
};

class EvalFeed {
 public:
  // Batches of `batch` rows of `d`: shard `shard`, of which this rank takes every `every`-th
  // starting at `offset` (every = 1, offset = 0: all of its shard).
  EvalFeed(const Dataset& d, int64_t batch, Shard shard, int every, int offset, const AugmentSpec& aug, uint64_t seed);
  int64_t batches() const { return mine_; }
  void into(RoundInputs& ri);

 private:
  BatchLoader loader_;
  int64_t batch_, every_, offset_, shardRows_, mine_, next_ = 0;
};

}  // namespace sw
