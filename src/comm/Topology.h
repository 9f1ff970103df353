// Topology: how the world's ranks map to (replica, stage). world = replicas x stages; the
// stages of one replica are consecutive ranks (a pipeline stays on one node when it fits), so
// rank = replica * stages + stage. (How a model's blocks are cut into stages: nn/Partition.h.)
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

}  // namespace sw
