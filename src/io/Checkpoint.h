// Checkpoints: one HDF5 shard per rank under DIR/checkpoints/step_NNNNNNNNN/rank_RRRRR.h5 (plus
// an algorithm's own NAME_rank_RRRRR.h5), each written to a temporary name, fsynced and renamed.
// Every dataset carries its XXH3 checksum (io/H5.h). A COMMITTED manifest, written by rank 0 after
// every shard exists, makes the step resumable and lists each file with its size and XXH3, and
// the job's topology (stages, replicas, each stage's blocks) so a reader knows which shard holds
// what; DIR/checkpoints/LATEST names the newest committed step. A half-written checkpoint never
// has a manifest (and a failed write removes the step), so it is never resumed; a checkpoint
// that fails verification is renamed damaged_step_N, never deleted.
// Format 2 (this one); format 1 (a text marker, no checksums) is still read, unverified.
#pragma once
#include <map>
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
// A shard written by another model, rank count or algorithm than `want` is bad input (InputError
// naming the step directory and both sides).
void expectShardOf(const ShardMeta& got, const ShardMeta& want, const std::string& stepDir);

// One file of a committed checkpoint, as its manifest lists it.
struct ShardFile {
  std::string name;  // inside the step directory
  int rank = 0;
  int64_t bytes = 0;
  uint64_t digest = 0;  // h5::File::digest(): every attribute (each dataset's XXH3 among them) and shape
};

// What a COMMITTED manifest says.
struct Manifest {
  int format = 1;
  int64_t step = 0;
  int world = 1, stages = 1, replicas = 1;
  std::vector<BlockRange> parts;  // each stage's blocks
  std::vector<ShardFile> files;   // empty for format 1
};
// Throws DamagedError naming the marker when it is missing or unreadable.
Manifest readManifest(const std::string& stepDir);
std::string shardFilesJson(const std::vector<ShardFile>& files);
std::vector<ShardFile> parseShardFilesJson(const std::string& text);

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
  // This rank's files in the step directory (its shard and its algorithm's), with their sizes and
  // content digests.
  std::vector<ShardFile> rankFiles(int64_t step, int rank) const;
  // Benchmarks only (tools/bench/checkpoint_cost): shards without dataset sums or digests. Such a
  // checkpoint does not verify.
  void setChecksums(bool on) { checksums_ = on; }
  // Rank 0, after all shards are on disk: the manifest + LATEST + pruning to `keep` checkpoints.
  void commit(const Manifest& m, int keep);
  // Every rank, after a failed write: removes the uncommitted step directory (a committed one stays).
  void discard(int64_t step);
  // Step directory of the newest committed checkpoint, if any.
  std::optional<std::string> latest() const;
  // Every committed step directory, newest first.
  std::vector<std::string> committed() const;
  // Checks the files `rank` owns (every file when rank < 0) against the manifest: present, the
  // listed size, the listed content digest, and every dataset's bytes against its XXH3. Throws
  // DamagedError naming the file (and the dataset) and what did not match.
  static void verify(const std::string& stepDir, int rank);
  // Renames a damaged step directory to damaged_step_N (kept for inspection); returns the new path.
  static std::string quarantine(const std::string& stepDir);
  // Loads this rank's shard into model/optimizer; validates names, shapes and checksums
  // (InputError; DamagedError for a file that is not what it claims).
  void readShard(const std::string& stepDir, int rank, Model& model, BlockRange range, Optimizer& opt,
                 TrainProgress& progress, Rng::State& dropoutRng, ShardMeta* meta = nullptr) const;

 private:
  bool checksums_ = true;
  std::map<std::string, uint64_t> written_;  // digests of the shards this store wrote, by path
  void readShardFile(const std::string& path, Model& model, BlockRange range, Optimizer& opt, TrainProgress& p,
                     Rng::State& dropoutRng, ShardMeta* meta) const;
  std::string root_;
};

// fsync a file or directory by path (throws IoError).
void fsyncPath(const std::string& path);
// Writes `text` to `path` atomically (tmp + fsync + rename).
void writeFileAtomic(const std::string& path, const std::string& text);

}  // namespace sw
