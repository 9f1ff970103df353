// PipeDream family: asynchronous 1F1B pipelines that step after every mini-batch. pipedream
// (Narayanan et al., SOSP 2019) stashes the weights a forward used for its backward; SpecTrain
// (Chen et al., arXiv 1809.02839; seed-spectrain.md) v1 predicts them instead (PredictWeights,
// an op of this plug-in), v2 is pipedream with an (S - k)-fold step on stage k.
#pragma once
#include <memory>

#include "algo/Algorithm.h"

namespace sw {

enum class PipeDreamKind { kPipeDream, kSpecTrain };
std::unique_ptr<Algorithm> makePipeDream(const TrainConfig& cfg, PipeDreamKind kind);
// The program shape (ScheduleSpec::params). SpecTrain v1 (seed-spectrain.md 2) predicts weights
// s_f = floor(k/2) + S-k-1 steps ahead for forwards and s_b = floor(k/2) for backwards, capped at
// maxDistance when >= 0 (v2 is pipedream with stashing and an (S-k)-fold step).
struct PipeDreamParams {
  bool verticalSync = false;  // every stage uses the weight version stage 0 used
  bool stash = true;          // weight stashing (false: backward reads current weights)
  int maxDistance = -1;
};
std::unique_ptr<Schedule> makePipeDreamSchedule();
std::unique_ptr<Schedule> makeSpecTrainSchedule();  // v1

}  // namespace sw
