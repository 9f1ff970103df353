// Trainer: the wiring of one rank of a job - topology, backend, data, model, partition,
// optimizer, executor, the epoch loop, evaluation, metrics and checkpoints. Everything an
// algorithm changes comes from its Algorithm (src/algo, chosen by train.algo from the
// registry); the trainer never looks at the algorithm's name. All input is validated in
// prepare(), on every rank, before the run directory is touched. With no communicator (or a
// world of one) it is the single-process trainer.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "algo/Algorithm.h"
#include "comm/Communicator.h"
#include "comm/Topology.h"
#include "config/TrainConfig.h"
#include "coord/Metrics.h"
#include "data/Loader.h"
#include "io/Checkpoint.h"
#include "nn/Loss.h"
#include "nn/Model.h"
#include "optim/LrSchedule.h"
#include "optim/Optimizer.h"
#include "schedule/Executor.h"

namespace sw {

struct EpochHooks;

class Trainer {
 public:
  // outDir: run directory. resumeDir: continue the run stored there. world: the job's ranks
  // (nullptr = this process alone).
  Trainer(TrainConfig cfg, std::string outDir, std::string resumeDir = "", Communicator* world = nullptr);
  ~Trainer();
  // Validates and loads everything (collective). Throws InputError subclasses on bad input on
  // the failing rank and PeerFailure on the others.
  void prepare();
  // Before prepare(): load checkpoint `step` (-1: the newest that verifies) of the resume
  // directory for evaluation only (a finished run is fine; no training follows). `writtenBy`:
  // the run's train.algo when the config names another that evaluates the same shards (bp's on
  // several ranks as dp).
  void evaluateCheckpoint(int64_t step, std::string writtenBy = "") {
    resumeStep_ = step;
    evalOnly_ = true;
    writtenBy_ = std::move(writtenBy);
  }
  const DataSplits& data() const { return dataSplits_; }
  // Trains to the end, or until `stop` becomes true on any rank (then checkpoints and returns).
  // Returns the final test evaluation.
  EvalResult run(const std::atomic<bool>* stop = nullptr);
  // Pipelined forward over `d` on every rank of the job (collective); global loss/accuracy.
  EvalResult evaluate(const Dataset& d);
  // The test evaluation reported per epoch (the live model, or what the algorithm reports).
  EvalResult evaluateTest(int epoch);

  Model& model() { return *model_; }
  Optimizer& optimizer() { return *opt_; }
  Backend& backend() { return *be_; }
  const TrainConfig& config() const { return cfg_; }
  const TrainProgress& progress() const { return progress_; }
  const RankCoord& coord() const { return coord_; }
  BlockRange stageRange() const { return range_; }
  Algorithm& algorithm() { return *algo_; }
  template <class A>
  A& algorithm() {
    return dynamic_cast<A&>(*algo_);
  }
  bool stoppedBySignal() const { return stoppedBySignal_; }
  // Totals since the start of run() on this rank (compute/wait/optimizer seconds).
  const RoundStats& rankStats() const { return rankStats_; }

 private:
  void setup();  // phase 1: everything that can be wrong with the input (no collectives)
  void choosePartition();
  void checkpoint();
  void resume();
  void resumeFrom(const std::string& stepDir);
  std::string splitNote() const;
  const Program& program(int microbatches, Phase phase);
  RoundStats runRound(int epoch, int64_t firstBatch, int batches);
  void fillHooks(EpochHooks& h, RoundStats& epochStats, size_t liveAtStart);

  TrainConfig cfg_;
  std::string outDir_, resumeDir_;
  CommPtr self_;
  Communicator* world_ = nullptr;
  CommPtr deviceWorld_;  // world for device tensors (comm/DeviceComm.h); null on the CPU backend
  CommPtr pipe_, data_;
  std::unique_ptr<Algorithm> algo_;
  RankCoord coord_;
  ScheduleSpec spec_;
  LoaderPlan loaderPlan_;
  std::unique_ptr<Backend> be_;
  DataSplits dataSplits_;
  std::unique_ptr<Model> model_;
  BlockRange range_;
  std::vector<BlockRange> parts_;  // every stage's blocks
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<LrSchedule> lr_;
  std::unique_ptr<BatchLoader> loader_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<CheckpointStore> ckpt_;
  std::unique_ptr<SoftmaxCrossEntropy> loss_;
  std::unique_ptr<Executor> exec_;
  std::map<std::pair<int, int>, Program> programs_;
  TrainProgress progress_;
  RoundStats rankStats_;
  bool stoppedBySignal_ = false;
  int64_t resumeStep_ = -1;
  bool evalOnly_ = false;
  std::string writtenBy_;
};

}  // namespace sw
