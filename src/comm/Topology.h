// Topology: how the world's ranks map to (replica, stage). world = replicas x stages; the
// stages of one replica are consecutive ranks (a pipeline stays on one node when it fits), so
// rank = replica * stages + stage. Also the partition of a model's blocks into stages: an
// explicit boundary list from the config, or balanced by measured per-block cost.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace sw {

// Where one rank sits. Index vocabulary (shared with schedule/Instruction.h):
//   stage   0..stages-1, position in the pipeline (stage 0 reads the data);
//   replica 0..replicas-1, a data-parallel copy of the whole pipeline.
struct RankCoord {
  int rank = 0, world = 1;
  int stage = 0, stages = 1;
  int replica = 0, replicas = 1;
  bool firstStage() const { return stage == 0; }
  bool lastStage() const { return stage == stages - 1; }
};

class Topology {
 public:
  // Throws ConfigError when `world` is not a multiple of `stages`.
  Topology(int world, int stages);
  int world() const { return world_; }
  int stages() const { return stages_; }
  int replicas() const { return world_ / stages_; }
  RankCoord coord(int rank) const;
  int rankOf(int replica, int stage) const { return replica * stages_ + stage; }
  std::string str() const;

 private:
  int world_, stages_;
};

// Half-open block ranges [begin, end) of each stage.
struct StageRange {
  size_t begin = 0, end = 0;
};

// Parses "0,3,6" (the first block of stages 1..S-1) for `numBlocks` blocks into S ranges.
// Throws ConfigError naming `key` when the list is not strictly increasing inside (0, numBlocks).
std::vector<StageRange> partitionExplicit(const std::string& list, size_t numBlocks, int stages,
                                          const std::string& key);
// Contiguous partition minimising the most expensive stage (exact, by dynamic programming).
std::vector<StageRange> partitionBalanced(const std::vector<double>& blockCost, int stages);

}  // namespace sw
