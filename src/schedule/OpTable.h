// OpTable: what the Executor runs for each instruction. The Executor fills the ops every
// algorithm shares (Load, Forward, Backward, Send/Recv, ReduceGrads, OptimizerStep,
// StashWeights); an algorithm's ExecutorPlugin adds the ops only it uses (PredictWeights,
// LocalLoss, TrainFeedback, ...) and may wrap a shared one, calling the previous handler for
// the cases it does not change. Timing and tracing wrap every call once, in the Executor's loop.
#pragma once
#include <array>
#include <functional>
#include <memory>

#include "schedule/Instruction.h"

namespace sw {

class Executor;
struct RoundInputs;
struct RoundStats;
class Tensor;

// One call of an op: the instruction, the round's inputs and statistics, and the executor
// (its stage, slots and helpers).
struct OpCall {
  Executor& ex;
  const Instr& in;
  const RoundInputs& ri;
  RoundStats& st;
  bool overlapReduce = false;  // Backward: the next instruction is ReduceGrads (bucketed overlap)
};
using OpHandler = std::function<void(OpCall&)>;

// How the loop accounts an op's time (minus what the handler reports as blocked in st.wait).
enum class OpTime { kNone, kCompute, kOptimizer };

class OpTable {
 public:
  void set(Op op, OpHandler h, OpTime time = OpTime::kNone);
  // The current handler (empty when none); copy it to wrap it.
  const OpHandler& get(Op op) const { return entries_[index(op)].handler; }
  OpTime time(Op op) const { return entries_[index(op)].time; }
  bool has(Op op) const { return bool(entries_[index(op)].handler); }

 private:
  static size_t index(Op op) { return static_cast<size_t>(op); }
  struct Entry {
    OpHandler handler;
    OpTime time = OpTime::kNone;
  };
  std::array<Entry, kNumOps> entries_{};
};

// An algorithm's per-micro-batch state beside the shared Slot fields (Slot::ext).
class SlotState {
 public:
  virtual ~SlotState() = default;
  virtual void reset() = 0;
  // Tensors kept for a later backward (counted in RoundStats::peakHeldBytes).
  virtual void held(const std::function<void(const Tensor&)>& add) const {}
};

// What an algorithm adds to the executor of each of its ranks.
class ExecutorPlugin {
 public:
  virtual ~ExecutorPlugin() = default;
  virtual void registerOps(OpTable& table) {}
  virtual std::unique_ptr<SlotState> newSlotState() const { return nullptr; }
  // Called at the start of every run, with the program about to execute.
  virtual void beginRun(const Program& program) {}
  // Rank-level tensors held for later instructions (counted like SlotState::held).
  virtual void held(const std::function<void(const Tensor&)>& add) const {}
};

}  // namespace sw
