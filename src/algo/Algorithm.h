// Algorithm: everything one training algorithm adds to the shared machinery (DESIGN.md K). The
// Trainer is wiring (topology, backend, model, data, epoch loop, checkpoints, metrics) and asks
// its Algorithm at each point where algorithms differ; the Executor runs the Algorithm's
// programs with the ops it registers (ExecutorPlugin). One object per rank and run, made by the
// registry (algo/Registry.h) from train.algo. Every hook has a default that is what plain
// backprop does, so a plug-in overrides only what it changes.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/Communicator.h"
#include "comm/Topology.h"
#include "config/TrainConfig.h"
#include "coord/Metrics.h"
#include "data/Loader.h"
#include "io/Checkpoint.h"
#include "optim/LrSchedule.h"
#include "schedule/Executor.h"
#include "schedule/Schedule.h"
#include "schedule/Validator.h"

namespace sw {

// The data stream of one replica.
struct LoaderPlan {
  uint64_t seed = 0;
  Shard shard;
  int64_t batch = 0;   // samples per batch this replica reads
  int64_t global = 0;  // samples per batch over the shard's count (0: batch x shard count)
  // The replicas' gradients are averaged (dp, pipelines with replicas): an uneven split weights
  // each micro-batch's loss by its share of the global batch. False: each replica's own mean.
  bool averaged = true;
};

// What the trainer has built, handed to the algorithm's setup hooks (filled as it grows).
struct AlgoEnv {
  Communicator* world = nullptr;        // control: metrics, agreement (host)
  Communicator* tensorWorld = nullptr;  // the world for tensors of the backend's device
  Communicator* pipe = nullptr;         // this replica's stages
  Communicator* data = nullptr;         // this stage's replicas
  Backend* be = nullptr;
  Model* model = nullptr;
  Optimizer* opt = nullptr;
  RankCoord coord;
  ScheduleSpec* spec = nullptr;               // the algorithm may add fields that need the model
  const std::vector<BlockRange>* parts = nullptr;  // every stage's blocks
  BlockRange range;                           // this stage's blocks
  ExecutorOptions* exec = nullptr;            // before the Executor is made
  const Dataset* train = nullptr;
  int64_t microBatchRows = 0;                 // rows of a training micro-batch
  int64_t batchesPerEpoch = 0;                // of this replica's loader
};

// Where a round starts and how long it is (for the learning-rate rules).
struct RoundPos {
  int epoch = 0;
  int64_t firstBatch = 0;
  int batches = 0;
  int64_t batchesPerEpoch = 0;
  const LrSchedule* lr = nullptr;
};

class Algorithm : public ExecutorPlugin {
 public:
  explicit Algorithm(const TrainConfig& cfg) : cfg_(cfg) {}
  ~Algorithm() override = default;
  const TrainConfig& config() const { return cfg_; }

  // --- phase 1: input checks, no collectives, nothing read yet ---
  // The job's shape for `world` ranks: stages, replicas, micro-batches and the algorithm's
  // schedule fields. Throws ConfigError naming the key. Default: data parallel over one stage.
  virtual ScheduleSpec plan(int world) const;
  // Samples per replica per batch and the stream it reads. Default: the global batch split
  // over the replicas, each reading its shard with the run's seed.
  virtual LoaderPlan loader(const RankCoord& coord) const;
  virtual uint64_t modelSeed(int replica) const { return cfg_.train.seed; }
  // True when every replica computes the same thing (DTP's layer parallelism): one dropout
  // stream for all; otherwise replicas draw different masks.
  virtual bool mirrorsReplicas() const { return false; }
  // With the model built: checks that need it (throw ConfigError).
  virtual void checkModel(Model& model, const ScheduleSpec& spec) {}
  // The stage boundaries to use ("" = balanced); default pipe.partition.
  virtual std::string partition() const { return cfg_.pipe.partition; }

  // --- phase 2: after the partition, before the optimizer (aux heads join the stage) ---
  // The schedule fields that need the model and the partition. Pure: the trainer calls it
  // before attach(), the planner (plan/Planner.h) for each partition it weighs.
  virtual void completeSpec(ScheduleSpec& spec, Model& model, const std::vector<BlockRange>& parts) const {}
  virtual void attach(AlgoEnv& env) {}
  // After the optimizer exists, before the Executor (env.opt, env.exec set).
  virtual void bind(AlgoEnv& env) {}

  // --- programs ---
  // This rank's program of one round (pure: no I/O, no communication, no device).
  virtual Program build(const RankCoord& me, const ScheduleSpec& spec) const = 0;
  // True when each optimizer step covers all micro-batches of the round (flushed pipelines
  // and data parallel); false for asynchronous pipelines (one step per mini-batch).
  virtual bool flushed() const { return true; }
  // Sets the round's fields of `spec` for a round of `batches` mini-batches.
  virtual void roundShape(ScheduleSpec& spec, int batches) const {}
  // Mini-batches per round, for an epoch of `batchesPerEpoch`.
  virtual int roundBatches(int64_t batchesPerEpoch) const { return cfg_.train.accumSteps; }
  // The learning rate of each optimizer step of the round and the gradient scale.
  virtual void rates(const RoundPos& pos, RoundInputs& ri) const;

  // --- epoch loop ---
  virtual void start() {}  // once, before the first round
  virtual std::string describe() const { return ""; }  // start-up line (rank 0), "" = none
  virtual void afterRound(int64_t step) {}
  virtual void epochEnd(int epoch) {}
  // The evaluation reported each epoch: `plain` evaluates the live model.
  virtual EvalResult evaluateTest(int epoch, Executor& exec, const std::function<EvalResult()>& plain) {
    return plain();
  }
  // Per-rank values, world sums and fields of the train record, and a note for the epoch line.
  virtual std::vector<RankValue> rankValues() const { return {}; }
  virtual std::vector<double> sums() const { return {}; }
  virtual void trainExtras(const std::vector<double>& sums, std::vector<std::pair<std::string, double>>& extra) const {}
  virtual std::string epochNote() const { return ""; }
  virtual void epochBegin(int epoch) {}

  // --- checkpoints: the algorithm's own state, written before the rank's shard (a COMMITTED
  // marker implies it) and read after it. `src` says where: this rank's own files when the
  // checkpoint is of this job's shape (src.sameShape), else the old ranks whose state this rank
  // continues (resharding: io/Checkpoint.h ResumeSource). An algorithm whose state cannot be
  // mapped onto another shape throws InputError saying why. ---
  virtual void save(const std::string& stepDir, int rank) const {}
  virtual void load(const ResumeSource& src) {}

 protected:
  // Rate rules shared by several algorithms.
  void flushedRates(const RoundPos& pos, RoundInputs& ri) const;
  void perStepRates(const RoundPos& pos, RoundInputs& ri, float mult = 1.f) const;
  // One stage per replica unless pipe.stages says otherwise, or every rank a stage.
  int stagesOr(int world, int fallback) const { return cfg_.pipe.stages > 0 ? cfg_.pipe.stages : fallback; }
  // Fills stages/replicas/micro-batches of `spec` and checks the rank count against them.
  ScheduleSpec shape(int world, int stages) const;

  TrainConfig cfg_;
};

// Every rank's program (rank = replica * stages + stage; the evaluation program for
// Phase::kEval), and their simulation together (schedule/Validator.h).
std::vector<Program> rankPrograms(const Algorithm& a, const ScheduleSpec& spec);
SimResult simulate(const Algorithm& a, const ScheduleSpec& spec, const SimCosts& costs = {});

}  // namespace sw
