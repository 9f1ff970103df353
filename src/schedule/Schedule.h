// Schedule: a program builder, each rank's Program for one round. Pure: no I/O, no
// communication, no device; the same function feeds the Executor, the Validator and `stagewise
// schedule`. Algorithms (src/algo) own their builders; this file holds what they share.
#pragma once
#include <any>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schedule/Instruction.h"

namespace sw {

// kCalibrate: forward only, in training mode for batch norm (batch statistics update the running
// ones) with dropout off; nothing is kept for a backward (Parle's master re-estimates BN).
enum class Phase { kTrain, kEval, kCalibrate };

// What only one algorithm's program builder reads (its struct lives in its src/algo folder): set
// by its plan(), read by its build(). The shared layers (executor, validator) never look inside.
class ProgramParams {
 public:
  // The params of type P, made (default) if absent or of another type.
  template <class P>
  P& set() {
    if (!std::any_cast<P>(&v_)) v_ = P{};
    return *std::any_cast<P>(&v_);
  }
  template <class P>
  P* find() { return std::any_cast<P>(&v_); }
  // The params of type P, or P's defaults.
  template <class P>
  const P& get() const {
    static const P kDefault{};
    const P* p = std::any_cast<P>(&v_);
    return p ? *p : kDefault;
  }

 private:
  std::any v_;
};

struct ScheduleSpec {
  int stages = 1;
  int replicas = 1;
  int microbatches = 1;       // micro-batches in the round
  Phase phase = Phase::kTrain;
  // A send waits until the previous send on its (peer, tag) channel has been received: the
  // reference's one-slot rendezvous queue of interlocking backprop, which bounds how far a rank
  // runs ahead when nothing flows back (local). The Executor and the Validator both honour it.
  bool boundedSends = false;
  ProgramParams params;  // the algorithm's own (e.g. PipeDreamParams, DelayedParams)
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
