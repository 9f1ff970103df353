// DtpTrainer: the training loop of train.algo = dtp (sequential, one rank) and dtp_parallel
// (layer-parallel: the feedback blocks are spread over the ranks, every rank holds the whole
// model and runs the same forward update; spec seed-dtp.md 4). It keeps the contracts of
// train/Trainer: input validated in prepare() on every rank before anything is written,
// metrics.jsonl with the same records, an evaluation per epoch, committed per-rank checkpoints,
// bit-identical resume, SIGTERM -> checkpoint and exit 0, failures agreed over the ranks.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "comm/Communicator.h"
#include "config/TrainConfig.h"
#include "coord/Metrics.h"
#include "data/Loader.h"
#include "dtp/DtpCheckpoint.h"
#include "dtp/DtpEngine.h"
#include "io/Checkpoint.h"
#include "train/Trainer.h"

namespace sw {

// True for the algorithms this trainer runs (dtp, dtp_parallel).
bool isDtpAlgo(const std::string& algo);

class DtpTrainer {
 public:
  DtpTrainer(TrainConfig cfg, std::string outDir, std::string resumeDir = "", Communicator* world = nullptr);
  ~DtpTrainer();
  void prepare();
  EvalResult run(const std::atomic<bool>* stop = nullptr);
  // Test-set evaluation sharded by batch over the ranks (collective).
  EvalResult evaluate(const Dataset& d);

  Model& model() { return *model_; }
  dtp::FeedbackNet& feedback() { return *g_; }
  dtp::DtpEngine& engine() { return *engine_; }
  const TrainProgress& progress() const { return progress_; }
  bool stoppedBySignal() const { return stoppedBySignal_; }
  // Times the ranks were found to hold different weights and were re-synchronised.
  int resyncs() const { return resyncs_; }

 private:
  void checkpoint();
  dtp::DtpShardMeta meta() const;

  TrainConfig cfg_;
  std::string outDir_, resumeDir_;
  CommPtr self_;
  Communicator* world_ = nullptr;
  CommPtr deviceWorld_;  // world for device tensors (schedule/TrainingComm.h); null on the CPU backend
  std::unique_ptr<Backend> be_;
  DataSplits data_;
  std::unique_ptr<BatchLoader> loader_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<dtp::FeedbackNet> g_;
  std::unique_ptr<dtp::DtpEngine> engine_;
  std::unique_ptr<LrSchedule> lr_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<CheckpointStore> ckpt_;
  TrainProgress progress_;
  bool stoppedBySignal_ = false;
  int resyncs_ = 0;
};

}  // namespace sw
