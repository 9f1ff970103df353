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
#include <memory>
#include <vector>
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
  std::vector<int64_t> sample;  // per-sample input shape the model was built for (empty: not recorded)
  int64_t classes = 0;          // 0: not recorded (checkpoints before export existed)
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
// Path of rank `rank`'s file `prefix`rank_RRRRR.h5 in a step directory (prefix "" = its shard,
// "parle_", "dtp_" = an algorithm's file).
std::string rankFilePath(const std::string& stepDir, const std::string& prefix, int rank);

// Where a resuming rank finds its state in a committed checkpoint. The same topology and
// partition as the writing job: every rank reads its own files (bit-identical continuation).
// Another shape (rank count, stages, replicas or partition: resharding): a rank continues replica
// `replica % old replicas` of the writing job and reads its blocks from that replica's shards,
// whichever old stage held them; parameters, buffers, optimizer state and gradients are found by
// name (they are the same full model whatever the cut).
struct ResumeSource {
  std::string stepDir;
  Manifest manifest;
  int rank = 0;            // this rank, in the resuming job
  bool sameShape = true;
  int sourceReplica = 0;   // the old replica this rank continues
  std::vector<int> ranks;  // the old ranks of that replica, stage order (ranks = {rank} when sameShape)
  // The old rank whose stage held block b (-1 when none: a block beyond the old model).
  int rankHolding(size_t block) const;
  std::string describe() const;  // "4 ranks (1 replica x 4 stages, blocks ...)" of the writer
};
// Throws InputError when the checkpoint cannot be mapped onto this job (a format-1 checkpoint
// on another rank count, a partition that does not cover the model).
class SourceFiles;
ResumeSource resumeSource(const std::string& stepDir, int rank, int world, int stages, int replicas, int replica,
                          const std::vector<BlockRange>& parts, size_t numBlocks);
std::string shardFilesJson(const std::vector<ShardFile>& files);
std::vector<ShardFile> parseShardFilesJson(const std::string& text);

namespace h5 {
class File;
}
// The attributes every shard carries, whatever else it holds: who wrote it (algo, model, rank,
// world, the resolved config) and the training position.
void writeShardHeader(h5::File& f, const ShardMeta& meta, const TrainProgress& p);
ShardMeta readShardHeader(const h5::File& f, TrainProgress& p);

// The files PREFIXrank_R.h5 of a resuming rank's source ranks (ResumeSource::ranks), opened on
// demand (HDF5 errors become DamagedError naming the file).
class SourceFiles {
 public:
  SourceFiles(const ResumeSource& src, std::string prefix);
  ~SourceFiles();
  h5::File& at(int oldRank);
  // The file of the old rank holding `block` if it has `obj`, else the first source that has it.
  h5::File* find(const std::string& obj, size_t block = 0);
  const ResumeSource& source() const { return src_; }

 private:
  const ResumeSource& src_;
  std::string prefix_;
  std::map<int, std::unique_ptr<h5::File>> open_;
};

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
  // The same from another shape's checkpoint (src.sameShape false): each parameter, buffer and
  // optimizer state of `range` from the old shard that holds it; progress, optimizer step count
  // and dropout RNG from the old shard holding range.begin. Parameters no old shard has (an
  // auxiliary head at a new cut) keep their initial values when `fresh` is given (their names
  // are appended); otherwise, and for every main-model tensor, that is an InputError.
  void readResharded(const ResumeSource& src, Model& model, BlockRange range, Optimizer& opt, TrainProgress& progress,
                     Rng::State& dropoutRng, ShardMeta* meta, std::vector<std::string>* fresh) const;

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
