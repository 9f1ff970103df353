// Executor: runs one rank's Program. One loop and one switch; timing and tracing happen here,
// once, for every algorithm. Sends and receives are posted without blocking; a receive is
// waited for only when its data is consumed, and sends are reaped as they finish (all of them
// by the end of the round). Gradient averaging over replicas is bucketed and overlapped with the
// backward that precedes ReduceGrads.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "comm/Communicator.h"
#include "comm/Topology.h"
#include "data/Loader.h"
#include "nn/Loss.h"
#include "nn/Model.h"
#include "optim/Optimizer.h"
#include "schedule/Schedule.h"
#include "schedule/UpdateRule.h"

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
  Communicator* data = nullptr;  // the stage's replicas (gradient averaging)
  UpdateRule* rule = nullptr;    // replaces Optimizer::step and runs ElasticSync (parle)
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
  // Delayed pipelines: a step that accumulated n backwards (OptimizerStep.mb) scales by 1/n.
  bool averageByCount = false;
};

struct RoundStats {
  double lossSum = 0;  // sum over samples (last stage only)
  int64_t correct = 0, seen = 0;
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

// What a training forward keeps for its backward (delayed-gradient pipelines, seed-petra.md
// 1.4). The last stage always keeps its context: it runs its backward in the same tick.
enum class Retain {
  kContext,      // every layer's saved tensors (backprop; store-vjp)
  kInput,        // the stage's input; the backward recomputes the forward (DSP, stashing)
  kReconstruct,  // inputs of non-reversible blocks only; reversible blocks are inverted from
                 // the output the next stage sends back (PETRA)
};

struct ExecutorOptions {
  size_t bucketBytes = 25u << 20;  // gradient allreduce bucket (PyTorch DDP's default)
  bool trace = false;              // keep a TraceEvent per compute instruction
  Retain storage = Retain::kContext;
  bool reconFromNext = false;  // kReconstruct: the next stage sends back this stage's output
  // Interlocking backprop (seed-interlocking.md): the rule, with this stage as component
  // coord.stage; the weights of mean-mode backward passes come from it.
  InterlockRule interlock;
  // A send first waits for the previous send on its (peer, tag) channel (ScheduleSpec::boundedSends).
  bool boundedSends = false;
  // Testing: sleep a random 0..jitterMicros microseconds before each instruction, drawn from a
  // stream of jitterSeed (exposes any dependence of the results on timing).
  int jitterMicros = 0;
  uint64_t jitterSeed = 0;
};

class Executor {
 public:
  Executor(StageContext ctx, ExecutorOptions opts = {});
  ~Executor();
  RoundStats run(const Program& program, const RoundInputs& in);
  const std::vector<TraceEvent>& trace() const { return trace_; }
  // Weight version (optimizer steps applied) within the current round.
  int version() const { return version_; }

 private:
  struct Slot;
  struct Bucket;
  void dispatch(const Instr& in, const RoundInputs& ri, RoundStats& st);
  void forward(const Instr& in, const RoundInputs& ri, RoundStats& st);
  void backward(const Instr& in, bool overlapReduce, RoundStats& st);
  void launchBucket(Bucket& b);
  void reduceGrads(RoundStats& st);
  void useVersion(int version);  // swaps stashed or predicted weights in (and back with -1)
  void storedForward(Slot& s, Mode mode);         // forward keeping what Storage says
  Tensor recomputedBackward(Slot& s, const Tensor& dy, InputGrad ig);
  void reapSends();
  size_t heldBytes() const;
  void postSend(const Tensor& t, int peer, int tag, RoundStats& st);
  // Interlocking (ExecutorInterlocking section of Executor.cpp).
  void localLoss(const Instr& in, RoundStats& st);
  void lossBackward(const Instr& in, RoundStats& st);
  Slot& slot(const Instr& in);
  Shape inputShape(int64_t rows) const;
  Shape outputShape(int64_t rows) const;

  StageContext c_;
  ExecutorOptions opts_;
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
  std::map<int, int> ctxUses_;                 // interlocking: backward passes left per mb
  std::set<const Instr*> dxSent_;              // interlocking: backward passes whose dx is sent
  std::vector<TraceEvent> trace_;
  std::chrono::steady_clock::time_point t0_;
  Rng jitter_;
};

}  // namespace sw
