// Interlocking backprop family (Gomez et al., "Interlocking Backpropagation: Improving depthwise
// model-parallelism", JMLR 23(171), 2022; seed-interlocking.md): interlocking (n-wise) and local
// learning. The model is cut into components, each but the last with an auxiliary head; with one
// component per rank the stage schedule (Interlocking.cpp) runs with this plug-in's ops
// (LocalLoss, InputGrad, per-loss Backward and gradient messages); with pipe.stages = 1 every
// component lives in one process and each mini-batch runs through InterlockingLoop, which
// computes the same numbers.
#pragma once
#include <memory>
#include <vector>

#include "algo/Algorithm.h"
#include "algo/interlocking/Interlock.h"

namespace sw {

// kNWise: interlocking.n-wise gradients; kLocal: every component on its own loss (n = 1).
enum class InterlockingKind { kNWise, kLocal };
std::unique_ptr<Algorithm> makeInterlocking(const TrainConfig& cfg, InterlockingKind kind);
// The program shape (ScheduleSpec::params): the stages are the components; communication
// distance d (0 = local) and the pairwise variant.
struct InterlockParams {
  int distance = 1;
  PairwiseMode pairwise = PairwiseMode::kNextOnly;
};
std::unique_ptr<Schedule> makeInterlockingSchedule();

// The component block ranges of an interlocking/local run (all of them, also on a stage rank).
const std::vector<BlockRange>& interlockingComponents(const Algorithm& a);

}  // namespace sw
