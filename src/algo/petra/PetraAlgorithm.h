// PETRA family (Rivaud et al., ICLR 2025, "PETRA: Parallel End-to-end Training with Reversible
// Architectures"; seed-petra.md): the delayed-gradient stage pipeline (Delayed.cpp) and what a
// stage keeps between a micro-batch's forward and its backward (PetraAlgorithm.cpp): nothing
// for reversible blocks, which are inverted from the output the next stage sends back (PETRA),
// the stage's input (DSP; with stashed weights: "stashing"), or every context (store_context,
// = backprop when synchronous).
#pragma once
#include <memory>

#include "algo/Algorithm.h"

namespace sw {

std::unique_ptr<Algorithm> makePetra(const TrainConfig& cfg);
std::unique_ptr<Schedule> makeDelayedSchedule();

}  // namespace sw
