// PETRA family (Rivaud et al., ICLR 2025, "PETRA: Parallel End-to-end Training with Reversible
// Architectures"; seed-petra.md): the delayed-gradient stage pipeline (Delayed.cpp) and what a
// stage keeps between a micro-batch's forward and its backward (PetraAlgorithm.cpp): nothing
// for reversible blocks, which are inverted from the output the next stage sends back (PETRA),
// the stage's input (DSP; with stashed weights: "stashing"), or every context (store_context,
// = backprop when synchronous).
#pragma once
#include <memory>
#include <vector>

#include "algo/Algorithm.h"

namespace sw {

std::unique_ptr<Algorithm> makePetra(const TrainConfig& cfg);
// The program shape (ScheduleSpec::params; seed-petra.md 1.2): an optimizer step every accumSteps
// backward passes; stashParams: a backward uses its forward's weights; reconFrom[k]: stage k
// rebuilds its input from what stage k+1 sends back (kTagRecon).
struct DelayedParams {
  int accumSteps = 1;
  bool stashParams = false;
  std::vector<bool> reconFrom;
};
std::unique_ptr<Schedule> makeDelayedSchedule();

}  // namespace sw
