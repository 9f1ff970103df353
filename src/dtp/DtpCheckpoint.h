// DTP checkpoint shards: one HDF5 file per rank in the run's checkpoint store
// (DIR/checkpoints/step_N/rank_R.h5, committed by rank 0's marker as for every algorithm, see
// io/Checkpoint.h). A shard holds what that rank needs to continue bit-identically: F's
// parameters and momentum, every G's parameters, the momentum of the G blocks it owns, the layer
// assignment and the training position. Noise needs no RNG state: it is keyed on the step.
#pragma once
#include <string>
#include <vector>

#include "dtp/DtpEngine.h"
#include "io/Checkpoint.h"

namespace sw::dtp {

struct DtpShardMeta {
  std::string algo, model, configText;
  int rank = 0, world = 1;
  std::vector<int> owner;
};

void writeDtpShard(const CheckpointStore& store, int64_t step, const DtpShardMeta& meta, Model& f, FeedbackNet& g,
                   DtpEngine& engine, const TrainProgress& progress);
// Reads this rank's shard of `stepDir` into the nets and optimizers. Throws InputError naming the
// file when the shard does not fit (algo, model, world size, assignment, names, shapes).
void readDtpShard(const std::string& stepDir, const DtpShardMeta& expect, Model& f, FeedbackNet& g,
                  DtpEngine& engine, TrainProgress& progress);

}  // namespace sw::dtp
