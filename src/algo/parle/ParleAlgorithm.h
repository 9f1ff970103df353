// Parle (Chaudhari, Baldassi, Zecchina, Soatto, Talwalkar, Oberman, "Parle: parallelizing
// stochastic gradient descent", SysML 2018; seed-parle.md), with Elastic-SGD and Entropy-SGD as
// its modes: everything train.algo = parle adds, in one place. Its ops replace OptimizerStep
// (ParleOptimizer::innerStep) and add ElasticSync (one allreduce of the stage's parameters over
// the replicas of that stage, then the coupling update); it owns the Parle state and its
// checkpoint file, and evaluates the master: the mean of the replicas' anchors with batch-norm
// statistics re-estimated on training data (spec 2.3, 7.4). Replicas are the `data`
// communicator's ranks (same stage, every replica), so a replica may itself be a pipeline:
// world = replicas x stages.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "algo/Algorithm.h"
#include "algo/parle/ParleOptimizer.h"

namespace sw {

std::unique_ptr<Algorithm> makeParle(const TrainConfig& cfg);

// The per-replica program: `pipeline` (1f1b | gpipe | mp), then ElasticSync after the round's
// inner steps (kAfterSteps, L >= 1) or before every step (kEveryStep, Elastic-SGD with L = 0).
enum class ParleCoupling { kAfterSteps, kEveryStep };
std::unique_ptr<Schedule> makeParleSchedule(const std::string& pipeline, ParleCoupling coupling);
// The program shape (ScheduleSpec::params): inner optimizer steps in the round (the micro-batches
// split evenly between them).
struct ParleParams {
  int steps = 1;
};

struct ParleContext {
  Backend* be = nullptr;
  Model* model = nullptr;
  BlockRange range;
  Optimizer* inner = nullptr;     // the stage's SGD optimizer (inner steps)
  Communicator* data = nullptr;   // this stage across the replicas
  RankCoord coord;
  ScheduleSpec spec;              // stages and replicas of the job
  const Dataset* train = nullptr; // batch-norm re-estimation data
  int64_t microBatchRows = 0;     // rows of a training micro-batch (BN batch size)
  int64_t batchesPerEpoch = 0;    // nb of the scoping schedule (a replica's loader)
};

class ParleAlgorithm : public Algorithm {
 public:
  explicit ParleAlgorithm(const TrainConfig& cfg);
  ScheduleSpec plan(int world) const override;
  LoaderPlan loader(const RankCoord& coord) const override;
  uint64_t modelSeed(int replica) const override;
  void bind(AlgoEnv& env) override;
  Program build(const RankCoord& me, const ScheduleSpec& spec) const override { return sched_->build(me.stage, spec); }
  bool flushed() const override { return false; }  // several optimizer steps per round
  void roundShape(ScheduleSpec& spec, int batches) const override { spec.params.set<ParleParams>().steps = batches; }
  // Mini-batches per round: one synchronisation block (L, or 1 for Elastic-SGD with L = 0).
  int roundBatches(int64_t) const override { return std::max(1, cfg_.parle.L); }
  void rates(const RoundPos& pos, RoundInputs& ri) const override { perStepRates(pos, ri); }
  void registerOps(OpTable& t) override;
  EvalResult evaluateTest(int epoch, Executor& exec, const std::function<EvalResult()>& plain) override;
  void trainExtras(const std::vector<double>& sums, std::vector<std::pair<std::string, double>>& extra) const override;
  std::string describe() const override;

  // Runs `fn` (an evaluation) with the master in this rank's parameters: the replica mean of the
  // anchors (one allreduce) and, with parle.bn_refresh, batch-norm statistics re-estimated by a
  // forward pass over training data in calibration mode; then puts the replica back. Collective
  // over the job; every rank computes the same master.
  void withMaster(Executor& exec, int epoch, const std::function<void()>& fn);
  // Same, but only the master's parameters (no BN re-estimation), for tests and tools.
  void withMasterWeights(const std::function<void()>& fn);

  // Parle state of this rank in DIR/step_N/parle_rank_R.h5 (written before the main shard, so a
  // COMMITTED marker implies it). The last evaluated master (parameters + BN statistics) is
  // stored there too.
  void save(const std::string& stepDir, int rank) const override;
  void load(const ResumeSource& src) override;
  ParleOptimizer& optimizer() { return *opt_; }
  // This stage's part of the last evaluated master (host copies; empty before the first).
  const std::vector<Tensor>& lastMasterParams() const { return masterParams_; }
  const std::vector<Tensor>& lastMasterBuffers() const { return masterBuffers_; }

 private:
  double elasticSync(float lr);
  void refreshBatchNorm(Executor& exec, int epoch);
  std::vector<Tensor> copyParams();
  std::vector<Tensor> copyBuffers();
  void putParams(const std::vector<Tensor>& v);
  void putBuffers(const std::vector<Tensor>& v);

  ParleContext c_;
  std::unique_ptr<Schedule> sched_;
  ParleOptions opts_;
  std::unique_ptr<ParleOptimizer> opt_;
  std::vector<Param*> params_;
  std::vector<Buffer*> buffers_;
  Tensor flat_;  // host buffer of the master average
  std::vector<Tensor> masterParams_, masterBuffers_;  // the last evaluated master (host)
};

}  // namespace sw
