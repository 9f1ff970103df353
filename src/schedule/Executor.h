// Executor: runs one rank's Program. One loop over the instructions and one op table
// (schedule/OpTable.h): the ops every algorithm shares are defined here, an algorithm's own ops
// come from its ExecutorPlugin. Timing and tracing happen in the loop, once, around every op.
// Sends and receives are posted without blocking; a receive is waited for only when its data is
// consumed, and sends are reaped as they finish (all of them by the end of the round). Gradient
// averaging over replicas is bucketed and overlapped with the backward that precedes ReduceGrads.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "comm/Communicator.h"
#include "comm/Topology.h"
#include "core/Rng.h"
#include "data/Loader.h"
#include "nn/Loss.h"
#include "nn/Model.h"
#include "optim/Optimizer.h"
#include "schedule/OpTable.h"
#include "schedule/Schedule.h"

namespace sw {

// What this rank owns: its stage of the model and how it talks to its neighbours.
struct StageContext {
  Backend* be = nullptr;
  Model* model = nullptr;
  BlockRange range;              // this stage's blocks
  Optimizer* opt = nullptr;      // optimizer over this stage's parameters
  SoftmaxCrossEntropy* loss = nullptr;
  RankCoord coord;
  Communicator* pipe = nullptr;  // the replica's pipeline (rank = stage)
  Communicator* data = nullptr;  // the stage's replicas (gradient averaging, collectives)
};

// Per-round inputs supplied by the trainer.
struct RoundInputs {
  Phase phase = Phase::kTrain;
  // Host micro-batch `mb` of the round (x and labels); called by the first and last stages.
  std::function<void(int mb, Batch& out)> fetch;
  // Rows of micro-batch `mb` (every stage: shapes of received tensors).
  std::function<int64_t(int mb)> rows;
  // Learning rate of the round's k-th optimizer step.
  std::function<float(int k)> lr;
  float gradScale = 1.f;  // multiplies gradients at each optimizer step (averaging)
  // Multiplies the loss gradient of micro-batch `mb` (null: 1): uneven splits weight each
  // micro-batch by its share of the batch (train/Feeds.h).
  std::function<float(int mb)> lossWeight;
  // Delayed pipelines: a step that accumulated n backwards (OptimizerStep.mb) scales by 1/n.
  bool averageByCount = false;
  int64_t step = 0;       // optimizer steps before the round (keys per-step noise, probes)
};

struct RoundStats {
  double lossSum = 0;  // sum over samples (last stage only)
  int64_t correct = 0, seen = 0;
  int64_t correct5 = 0;  // evaluation: label among the 5 largest logits
  int updates = 0;
  // Seconds spent: forward/backward compute, blocked on receives or reductions, optimizer.
  double compute = 0, wait = 0, optimizer = 0, total = 0;
  // Largest state held between instructions for later backwards: saved contexts, kept inputs,
  // stashed and predicted weights (bytes, each buffer counted once). Deterministic, unlike
  // allocator peaks, which also see transient buffers and unreceived messages.
  size_t peakHeldBytes = 0;
  void add(const RoundStats& o);
};

struct TraceEvent {
  Instr in;
  double start, end;  // seconds since the executor was created
};

// The per-micro-batch state every algorithm has. An algorithm's own fields live in `ext`.
struct Slot {
  int mb = -1;
  int64_t rows = 0;
  float lossWeight = 1.f;  // RoundInputs::lossWeight of this micro-batch
  Tensor in, labels, out, gin, gout;
  Tensor actBuf, gradBuf;  // receive buffers, on the backend's device
  WorkPtr actWork, gradWork;
  Ctx ctx, lossCtx;
  std::unique_ptr<SlotState> ext;
  void reset();
  template <class T>
  T& state() {
    return static_cast<T&>(*ext);
  }
};

struct ExecutorOptions {
  size_t bucketBytes = 25u << 20;  // gradient allreduce bucket (PyTorch DDP's default)
  bool trace = false;              // keep a TraceEvent per compute instruction
  // A send first waits for the previous send on its (peer, tag) channel (ScheduleSpec::boundedSends).
  bool boundedSends = false;
  // Testing: sleep a random 0..jitterMicros microseconds before each instruction, drawn from a
  // stream of jitterSeed (exposes any dependence of the results on timing).
  int jitterMicros = 0;
  uint64_t jitterSeed = 0;
};

class Executor {
 public:
  Executor(StageContext ctx, ExecutorOptions opts = {}, ExecutorPlugin* plugin = nullptr);
  ~Executor();
  RoundStats run(const Program& program, const RoundInputs& in);
  const std::vector<TraceEvent>& trace() const { return trace_; }
  // Weight version (optimizer steps applied) within the current round.
  int version() const { return version_; }

  // --- for the ops (shared and plugins') ---
  const StageContext& stage() const { return c_; }
  const std::vector<Param*>& params() const { return params_; }
  Slot& slot(const Instr& in);
  Shape inputShape(int64_t rows) const;
  Shape outputShape(int64_t rows) const;
  static Mode modeOf(Phase phase);
  // Waits for `w` (if any) and resets it, counting the blocked time.
  void wait(WorkPtr& w, RoundStats& st);
  // The slot's input: loaded, or the received activation (waited for).
  Tensor takeInput(Slot& s, RoundStats& st);
  // The gradient w.r.t. the stage's output: the loss's (last stage) or the received one.
  Tensor outputGrad(Slot& s, RoundStats& st);
  // After a stage forward produced `out`: the loss and its statistics on the last stage,
  // else the output to send.
  void finishForward(const Instr& in, Slot& s, const Tensor& out, Mode mode, RoundStats& st);
  // Backward of the stage's blocks from dy (bucketed reduction launched block by block when
  // overlapReduce); returns the input gradient.
  Tensor stageBackward(const Tensor& dy, Ctx& ctx, bool overlapReduce);
  void launchAllBuckets();
  void postSend(const Tensor& t, int peer, int tag, RoundStats& st);
  // Swaps stashed or predicted weights in (and back with -1).
  void useVersion(int version);
  // SpecTrain's predicted weights (valid once a prediction was made).
  std::vector<Tensor>& predicted() { return predicted_; }
  void setPredictedValid(bool v) { predictedValid_ = v; }
  // OptimizerStep's bookkeeping around `apply(lr, gradScale)`: zero grads, version, counts.
  void optimizerStep(OpCall& c, const std::function<void(float lr, float gradScale)>& apply);

 private:
  struct Bucket;
  void registerSharedOps();
  void forwardOp(OpCall& c);
  void backwardOp(OpCall& c);
  void launchBucket(Bucket& b);
  void reduceGrads(RoundStats& st);
  void reapSends();
  size_t heldBytes() const;

  StageContext c_;
  ExecutorOptions opts_;
  ExecutorPlugin* plugin_ = nullptr;
  OpTable ops_;
  std::vector<Param*> params_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::unique_ptr<Bucket>> buckets_;   // in backward order
  std::vector<std::vector<size_t>> blockBuckets_;  // per block of the stage: buckets it completes
  std::map<int, std::vector<Tensor>> stash_;       // weight version -> parameter values
  int swappedVersion_ = -1;
  std::vector<Tensor> predicted_;  // SpecTrain's predicted weights
  bool predictedValid_ = false, predictedSwapped_ = false;
  int version_ = 0;
  std::vector<WorkPtr> sends_;
  std::map<std::pair<int, int>, WorkPtr> channelSend_;  // boundedSends: last send per (peer, tag)
  std::vector<TraceEvent> trace_;
  std::chrono::steady_clock::time_point t0_;
  Rng jitter_;
};

}  // namespace sw
