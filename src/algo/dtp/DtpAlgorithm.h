// Difference target propagation (Ernoult et al., "Towards Scaling Difference Target Propagation
// by Learning Backprop Targets", ICML 2022; spec seed-dtp.md) as a plug-in of the one executor:
// dtp (sequential, one rank) and dtp_parallel (layer-parallel, amoudgl/distributed-dtp: the
// feedback blocks are spread over the ranks, every rank holds the whole model and runs the same
// forward update). One round is one mini-batch; rank r's program:
//   Load, Forward          every rank, the same batch (data is not parallelised)
//   TrainFeedback i        for each feedback block G_i this rank owns (DtpParams::owner)
//   SyncFeedback i         for i = 1..L on every rank (dtp_parallel): G_i's weight from its owner
//   ComputeTargets, Backward (layer-local losses into each block only), OptimizerStep
// Sequential DTP is the same program with every block owned by the only rank and no syncs, which
// is why the two compute the same thing (spec 4.4: F is frozen during the feedback phase, so the
// blocks' L-DRL problems are independent and nothing is stale).
#pragma once
#include <memory>
#include <vector>

#include "algo/Algorithm.h"
#include "algo/dtp/Dtp.h"
#include "algo/dtp/FeedbackNet.h"

namespace sw {

enum class DtpKind { kSequential, kLayerParallel };
std::unique_ptr<Algorithm> makeDtp(const TrainConfig& cfg, DtpKind kind);

// The program shape (ScheduleSpec::params): owner[i] = the replica that trains feedback block G_i
// (index 0 unused, -1).
struct DtpParams {
  std::vector<int> owner;
};
// The program of replica `rank` of `world` (stage 0 of 1) for `batches` mini-batches.
Program buildDtpProgram(int rank, int world, int batches, const std::vector<int>& owner);

class DtpAlgorithm : public Algorithm {
 public:
  DtpAlgorithm(const TrainConfig& cfg, DtpKind kind) : Algorithm(cfg), kind_(kind) {}
  ScheduleSpec plan(int world) const override;
  LoaderPlan loader(const RankCoord& coord) const override;
  bool mirrorsReplicas() const override { return true; }
  void checkModel(Model& model, const ScheduleSpec& spec) override;
  void completeSpec(ScheduleSpec& spec, Model& model, const std::vector<BlockRange>& parts) const override;
  void attach(AlgoEnv& env) override;
  void bind(AlgoEnv& env) override;
  Program build(const RankCoord& me, const ScheduleSpec& spec) const override;
  int roundBatches(int64_t) const override { return 1; }  // targets depend on the current weights
  std::unique_ptr<SlotState> newSlotState() const override;
  void registerOps(OpTable& t) override;

  void start() override;
  void afterRound(int64_t step) override;
  void epochBegin(int epoch) override;
  void epochEnd(int epoch) override;
  std::vector<RankValue> rankValues() const override;
  std::vector<double> sums() const override { return drl_; }  // L-DRL losses live on the owners
  void trainExtras(const std::vector<double>& sums, std::vector<std::pair<std::string, double>>& extra) const override;
  std::string epochNote() const override;
  void save(const std::string& stepDir, int rank) const override;
  void load(const ResumeSource& src) override;

  dtp::FeedbackNet& feedback() { return *g_; }
  const std::vector<int>& owner() const { return owner_; }
  // The optimizer of G_i, or nullptr when another rank owns G_i.
  Optimizer* feedbackOptimizer(int layer) { return gopt_.at(size_t(layer)).get(); }
  // FNV-1a hash over the bits of every F and G parameter (bit-identical replicas hash equal).
  uint64_t weightsHash();
  // Compares weightsHash() over the world; when ranks differ (nondeterministic kernels, pitfall 6),
  // copies rank 0's F (with its momentum) and G weights to everybody and returns true.
  bool checkAndResync();
  int resyncs() const { return resyncs_; }

 private:
  DtpKind kind_;
  AlgoEnv env_;
  std::unique_ptr<dtp::FeedbackNet> g_;
  dtp::Hyper hp_;
  std::vector<double> cost_;
  std::vector<int> owner_;
  std::vector<dtp::ForwardBlockInfo> info_;
  std::vector<std::unique_ptr<Optimizer>> gopt_;
  std::vector<WorkPtr> pending_;  // this round's weight broadcasts
  // Per-epoch sums on this rank: local losses, L-DRL losses (owned blocks), probes, seconds.
  std::vector<double> local_, drl_, bpAngle_, bpNorm_;
  int64_t bpAngleN_ = 0, steps_ = 0;
  double tForward_ = 0, tFeedback_ = 0, tUpdate_ = 0;
  int resyncs_ = 0;
};

}  // namespace sw
