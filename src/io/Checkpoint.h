// Checkpoints: one HDF5 shard per rank under DIR/checkpoints/step_NNNNNNNNN/rank_RRRRR.h5, each
// written to a temporary name, fsynced and renamed; a COMMITTED marker (written by rank 0 after
// every shard exists) makes the step resumable, and DIR/checkpoints/LATEST names the newest
// committed step. A half-written checkpoint therefore never has a marker and is never resumed.
#pragma once
#include <optional>
#include <string>

#include "core/Rng.h"
#include "nn/Model.h"
#include "optim/Optimizer.h"

namespace sw {

// Where training stands; enough to continue bit-identically.
struct TrainProgress {
  int epoch = 0;          // epoch in progress (or next to start when batch == 0)
  int64_t batch = 0;      // next batch index within the epoch
  int64_t step = 0;       // optimizer steps done
  int64_t microbatches = 0;  // backward passes since the last optimizer step
  double lossSum = 0;     // running train-loss sum over the epoch's batches
  int64_t correct = 0, seen = 0;
  double wallSeconds = 0;  // training wall time before this process started
  int64_t metricsBytes = 0;  // size of metrics.jsonl at checkpoint time (truncated on resume)
};

struct ShardMeta {
  std::string algo, model;
  int rank = 0, world = 1;
  std::string configText;
};

namespace h5 {
class File;
}
// The attributes every shard carries, whatever else it holds: who wrote it (algo, model, rank,
// world, the resolved config) and the training position.
void writeShardHeader(h5::File& f, const ShardMeta& meta, const TrainProgress& p);
ShardMeta readShardHeader(const h5::File& f, TrainProgress& p);

class CheckpointStore {
 public:
  explicit CheckpointStore(std::string runDir);
  std::string stepDir(int64_t step) const;
  // Writes this rank's shard atomically.
  // Parameters, buffers and optimizer state of the blocks in `range` (this rank's stage).
  void writeShard(int64_t step, const ShardMeta& meta, Model& model, BlockRange range, Optimizer& opt,
                  const TrainProgress& progress, const Rng::State& dropoutRng);
  // Rank 0, after all shards are on disk: marker + LATEST + pruning to `keep` checkpoints.
  void commit(int64_t step, int world, int keep);
  // Step directory of the newest committed checkpoint, if any.
  std::optional<std::string> latest() const;
  // Loads this rank's shard into model/optimizer; validates names and shapes (InputError).
  void readShard(const std::string& stepDir, int rank, Model& model, BlockRange range, Optimizer& opt,
                 TrainProgress& progress, Rng::State& dropoutRng, ShardMeta* meta = nullptr) const;

 private:
  std::string root_;
};

// fsync a file or directory by path (throws IoError).
void fsyncPath(const std::string& path);
// Writes `text` to `path` atomically (tmp + fsync + rename).
void writeFileAtomic(const std::string& path, const std::string& text);

}  // namespace sw
