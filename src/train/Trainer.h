// Trainer: the training loop of every algorithm with a stage schedule (bp, dp, mp, gpipe, 1f1b,
// pipedream, parle) on one rank of a job: builds the topology, this rank's stage of the model and its
// optimizer, then runs rounds (one optimizer step for flushed schedules, a drained window for
// pipedream) through the Executor, with evaluation each epoch, metrics, checkpoints and resume.
// All input is validated in prepare(), on every rank, before the run directory is touched.
// With no communicator (or a world of one) it is the single-process trainer.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <string>

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
#include "train/EpochLoop.h"
#include "train/InterlockingLoop.h"

namespace sw {

class ParleDriver;

class Trainer {
 public:
  // outDir: run directory. resumeDir: continue the run stored there. world: the job's ranks
  // (nullptr = this process alone).
  Trainer(TrainConfig cfg, std::string outDir, std::string resumeDir = "", Communicator* world = nullptr);
  ~Trainer();
  // Validates and loads everything (collective). Throws InputError subclasses on bad input on
  // the failing rank and PeerFailure on the others.
  void prepare();
  // Trains to the end, or until `stop` becomes true on any rank (then checkpoints and returns).
  // Returns the final test evaluation.
  EvalResult run(const std::atomic<bool>* stop = nullptr);
  // Pipelined forward over `d` on every rank of the job (collective); global loss/accuracy.
  EvalResult evaluate(const Dataset& d);

  Model& model() { return *model_; }
  Optimizer& optimizer() { return *opt_; }
  Backend& backend() { return *be_; }
  const TrainConfig& config() const { return cfg_; }
  const TrainProgress& progress() const { return progress_; }
  const RankCoord& coord() const { return coord_; }
  BlockRange stageRange() const { return range_; }
  // Interlocking/local: the component block ranges (all of them, also on a stage rank).
  const std::vector<StageRange>& components() const { return components_; }
  bool stoppedBySignal() const { return stoppedBySignal_; }
  // train.algo = parle: its driver (master evaluation, Parle state); nullptr otherwise.
  ParleDriver* parle() { return parle_.get(); }
  // The test evaluation reported per epoch: the live model, or Parle's master.
  EvalResult evaluateTest(int epoch);
  // Totals since the start of run() on this rank (compute/wait/optimizer seconds).
  const RoundStats& rankStats() const { return rankStats_; }

 private:
  void setupTopology();
  bool delayedPipeline() const;  // petra with delays (its own round and step rules)
  void choosePartition();
  void checkpoint();
  void resumeFrom(const std::string& stepDir);
  const Program& program(int microbatches, Phase phase);
  RoundStats runRound(int epoch, int64_t firstBatch, int batches);
  // Interlocking / local backprop (TrainerInterlocking.cpp).
  bool interlocking() const;
  void resolveComponents();                  // phase 1: the component split (validation)
  void attachAuxHeads(ExecutorOptions& eo);  // after the partition: aux heads, executor options
  RoundStats runLoopRound(int epoch, int64_t firstBatch, int batches);  // all components here

  TrainConfig cfg_;
  std::string outDir_, resumeDir_;
  CommPtr self_;
  Communicator* world_ = nullptr;
  CommPtr deviceWorld_;  // world for device tensors (TrainingComm.h); null on the CPU backend
  CommPtr pipe_, data_;
  RankCoord coord_;
  std::unique_ptr<Schedule> sched_;
  ScheduleSpec spec_;
  int64_t replicaBatch_ = 0;  // samples per replica per batch
  std::unique_ptr<Backend> be_;
  DataSplits dataSplits_;
  std::unique_ptr<Model> model_;
  BlockRange range_;
  std::vector<StageRange> parts_;  // every stage's blocks
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<LrSchedule> lr_;
  std::unique_ptr<BatchLoader> loader_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<CheckpointStore> ckpt_;
  std::unique_ptr<SoftmaxCrossEntropy> loss_;
  std::unique_ptr<ParleDriver> parle_;
  std::unique_ptr<Executor> exec_;
  std::map<std::pair<int, int>, Program> programs_;
  TrainProgress progress_;
  RoundStats rankStats_;
  bool stoppedBySignal_ = false;
  std::vector<StageRange> components_;
  std::unique_ptr<InterlockingLoop> loop_;
};

// Creates the backend named by runtime.device ("cpu", "cuda", "auto"), for tools and for the
// trainers (which move batches, messages, checkpoints and every host read between host and
// device; TrainingComm.h for messages).
std::unique_ptr<Backend> makeBackend(const RuntimeSection& rt);

}  // namespace sw
