// Trainer: the single-process training loop (algorithm `bp`): batches -> forward -> loss ->
// backward -> (accumulate) -> optimizer step, evaluation each epoch, metrics, checkpoints and
// resume. Everything that can be wrong with the input (config, data, checkpoint) is checked in
// prepare(), before the run directory is touched.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "config/TrainConfig.h"
#include "coord/Metrics.h"
#include "data/Loader.h"
#include "io/Checkpoint.h"
#include "nn/Loss.h"
#include "nn/Model.h"
#include "optim/LrSchedule.h"
#include "optim/Optimizer.h"

namespace sw {

struct EvalResult {
  double loss = 0, acc = 0;
  int64_t samples = 0;
};

class Trainer {
 public:
  // outDir: run directory (created by run()). resumeDir: continue the run stored there.
  Trainer(TrainConfig cfg, std::string outDir, std::string resumeDir = "");
  ~Trainer();
  // Validates and loads everything; throws InputError subclasses on bad input.
  void prepare();
  // Trains to the end (or until `stop` becomes true: then checkpoints and returns). Returns the
  // final test evaluation.
  EvalResult run(const std::atomic<bool>* stop = nullptr);
  EvalResult evaluate(const Dataset& d);
  // One optimizer-step-sized piece of work on a host batch; returns the batch loss.
  float trainBatch(const Batch& b, float lr);

  Model& model() { return *model_; }
  Optimizer& optimizer() { return *opt_; }
  Backend& backend() { return *be_; }
  const TrainConfig& config() const { return cfg_; }
  const TrainProgress& progress() const { return progress_; }
  bool stoppedBySignal() const { return stoppedBySignal_; }

 private:
  void checkpoint();
  void resumeFrom(const std::string& stepDir);
  TrainConfig cfg_;
  std::string outDir_, resumeDir_;
  std::unique_ptr<Backend> be_;
  DataSplits data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<LrSchedule> sched_;
  std::unique_ptr<BatchLoader> loader_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<CheckpointStore> ckpt_;
  std::unique_ptr<SoftmaxCrossEntropy> loss_;
  TrainProgress progress_;
  std::string resumeStepDir_;
  bool stoppedBySignal_ = false;
};

// Creates the backend named by runtime.device ("cpu", "cuda", "auto").
std::unique_ptr<Backend> makeBackend(const RuntimeSection& rt);

}  // namespace sw
