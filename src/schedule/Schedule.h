// Schedule: a program builder, each rank's Program for one round. Pure: no I/O, no
// communication, no device; the same function feeds the Executor, the Validator and `stagewise
// schedule`. Algorithms (src/algo) own their builders; this file holds what they share.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schedule/Instruction.h"

namespace sw {

// kCalibrate: forward only, in training mode for batch norm (batch statistics update the running
// ones) with dropout off; nothing is kept for a backward (Parle's master re-estimates BN).
enum class Phase { kTrain, kEval, kCalibrate };

// Interlocking backprop's pairwise variants (algo/interlocking/Interlock.h).
enum class PairwiseMode { kNextOnly, kSum, kMean };

struct ScheduleSpec {
  int stages = 1;
  int replicas = 1;
  int microbatches = 1;       // micro-batches in the round
  bool verticalSync = false;  // pipedream: every stage uses the weight version stage 0 used
  bool stash = true;          // pipedream: weight stashing (false: backward reads current weights)
  Phase phase = Phase::kTrain;
  // SpecTrain (seed-spectrain.md 2): version 1 predicts weights s_f = floor(k/2) + S-k-1 steps
  // ahead for forwards and s_b = floor(k/2) for backwards (capped at maxDistance when >= 0);
  // version 2 is pipedream with stashing whose step the trainer scales by S - k.
  int spectrainVersion = 1;
  int maxDistance = -1;
  // Delayed-gradient pipeline (PETRA family, seed-petra.md 1.2): optimizer step every
  // accumSteps backward passes; stashParams: a backward uses its forward's weights;
  // reconFrom[k]: stage k rebuilds its input from what stage k+1 sends back (kTagRecon).
  int accumSteps = 1;
  bool stashParams = false;
  std::vector<bool> reconFrom;
  // Interlocking backprop (seed-interlocking.md, algo/interlocking/Interlock.h): the stages are the
  // components; communication distance d (0 = local) and the pairwise variant.
  int distance = 1;
  PairwiseMode pairwise = PairwiseMode::kNextOnly;
  // A send waits until the previous send on its (peer, tag) channel has been received: the
  // reference's one-slot rendezvous queue, which bounds how far a rank runs ahead when nothing
  // flows back (local). The Executor and the Validator both honour it.
  bool boundedSends = false;
  int steps = 1;              // parle: inner optimizer steps in the round (microbatches split evenly)
  // DTP: owner[i] = the replica that trains feedback block G_i (index 0 unused, -1).
  std::vector<int> owner;
};

class Schedule {
 public:
  virtual ~Schedule() = default;
  virtual std::string_view name() const = 0;
  // The program of pipeline stage `stage` (every replica runs the same one).
  virtual Program build(int stage, const ScheduleSpec& spec) const = 0;
  // True when each optimizer step covers all micro-batches of the round (flushed pipelines
  // and data parallel); false for pipedream (one step per micro-batch).
  virtual bool flushed() const { return true; }
};

// Forward-only program (evaluation): micro-batches stream through the stages.
Program buildEvalProgram(int stage, const ScheduleSpec& spec);

// Number of activation slots a program uses (largest slot index + 1).
int numSlots(const Program& p);

namespace detail {
// Emits one micro-batch's forward or backward with its communication as one Step, following
// the stage's position in the pipeline (shared by every pipeline schedule).
Step forwardStep(int stage, int stages, int mb, int slot, int version = -1);
Step backwardStep(int stage, int stages, int mb, int slot, int version = -1);
// ReduceGrads (when replicated) + OptimizerStep.
Step updateStep(const ScheduleSpec& spec);
}  // namespace detail

}  // namespace sw
