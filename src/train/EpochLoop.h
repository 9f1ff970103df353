// EpochLoop: the epoch/round loop both trainers run (Trainer for the instruction-program
// algorithms, DtpTrainer for DTP). It owns the run contract of DESIGN.md section J so that every
// algorithm keeps it the same way: progress accounting and the progress line (rate, ETA),
// fault injection (runtime.fault), checkpoints every checkpoint.every_steps / every_epochs and
// at the end, train.max_steps (mid-epoch: checkpoint the exact position, evaluate, return),
// stop requests (checkpoint, return), and the per-epoch train and test records of metrics.jsonl
// with the per-rank time split and memory (idle_rankR, wait_ms_per_step_rankR,
// peak_rss_mb_rankR, their aggregates, plus what the trainer adds). The trainer supplies the
// work and its own metrics through hooks.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "config/TrainConfig.h"
#include "coord/Coordinator.h"
#include "coord/Metrics.h"
#include "io/Checkpoint.h"
#include "optim/LrSchedule.h"

namespace sw {

// One round of training as the trainer ran it.
struct RoundResult {
  int64_t batches = 0;  // batches consumed (progress.batch advances by this)
  int64_t updates = 0;  // optimizer steps taken (progress.step advances by this)
  RoundTotals totals;   // roundEnd(): world sums of loss / correct / seen, OR of stop flags
};

struct EpochHooks {
  // Runs the next round from progress.batch (the loop passes the stop request to fold in).
  std::function<RoundResult(int epoch, bool stopRequested)> round;
  std::function<void()> checkpoint;
  std::function<EvalResult(int epoch)> evaluate;
  // Optional. Called at the start of every epoch (reset per-epoch sums), after every round, and
  // at the end of the epoch's rounds (before its records).
  std::function<void(int epoch)> epochBegin;
  std::function<void()> afterRound;
  std::function<void(int epoch)> epochEnd;
  // This rank's fraction of the epoch blocked on peers and blocked milliseconds per step.
  std::function<std::pair<double, double>()> waits;
  // Optional: more per-rank values (same names and order on every rank).
  std::function<std::vector<RankValue>()> rankValues;
  // Optional: values summed over the world (e.g. losses that live on their owners), handed to
  // trainExtras with the record.
  std::function<std::vector<double>()> sums;
  // Optional: trainer fields of the train record, after lr and before the per-rank values.
  std::function<void(int epoch, const std::vector<double>& sums, MetricsRecord& tr)> trainExtras;
  // Optional: appended to the epoch's log line.
  std::function<std::string(int epoch)> epochNote;
};

// The leader's run directory: creates it, writes the resolved config (config.ini, which a resume
// reads back) and opens metrics.jsonl (truncated to the checkpoint's length when resuming).
std::unique_ptr<MetricsLog> openRunDirectory(const TrainConfig& cfg, const std::string& outDir, bool resuming,
                                             int64_t metricsBytes);

class EpochLoop {
 public:
  // metrics: the leader's log (null on other ranks). batchesPerEpoch from the loader.
  EpochLoop(const TrainConfig& cfg, Communicator& world, TrainProgress& progress, MetricsLog* metrics,
            const LrSchedule& lr, int64_t batchesPerEpoch);
  // Runs from progress to train.epochs. Returns the last test evaluation; *stopped is set when a
  // stop request ended the run (after its checkpoint).
  EvalResult run(EpochHooks& h, const std::atomic<bool>* stop, bool* stopped);

 private:
  void injectFault() const;
  void logProgress(int epoch, int64_t startBatch, double elapsed, bool tty) const;
  MetricsRecord trainRecord(EpochHooks& h, int epoch, int64_t startBatch, double epochSec, double wall);

  const TrainConfig& cfg_;
  Communicator& world_;
  TrainProgress& p_;
  MetricsLog* metrics_;
  const LrSchedule& lr_;
  int64_t nb_;
};

}  // namespace sw
