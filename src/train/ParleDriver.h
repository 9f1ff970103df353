// ParleDriver: everything train.algo = parle adds to the Trainer, in one place. It is the
// Executor's UpdateRule (inner step = ParleOptimizer::innerStep; ElasticSync = one allreduce of
// the stage's parameters over the replicas of that stage, then the coupling update), owns the
// Parle state and its checkpoint file, and evaluates the master: the mean of the replicas'
// anchors with batch-norm statistics re-estimated on training data (spec seed-parle.md 2.3, 7.4).
// Replicas are the `data` communicator's ranks (same stage, every replica), so a replica may
// itself be a pipeline: world = replicas x stages.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "comm/Communicator.h"
#include "comm/Topology.h"
#include "config/TrainConfig.h"
#include "data/Loader.h"
#include "optim/Parle.h"
#include "schedule/Executor.h"

namespace sw {

// Pieces the Trainer needs before the driver exists (model and loader construction).
namespace parle {
// Throws ConfigError when the topology does not fit the mode (entropy: one replica).
void checkTopology(const TrainConfig& cfg, int replicas, int stages);
// Seed of replica `replica`'s initial weights (parle.init).
uint64_t modelSeed(const TrainConfig& cfg, int replica);
// Seed and shard of replica `replica`'s training stream (parle.data).
std::pair<uint64_t, Shard> loaderPlan(const TrainConfig& cfg, int replica, int replicas);
// The per-replica program for the config.
std::unique_ptr<Schedule> makeSchedule(const TrainConfig& cfg);
}  // namespace parle

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

class ParleDriver : public UpdateRule {
 public:
  ParleDriver(const TrainConfig& cfg, ParleContext ctx);
  // UpdateRule.
  void step(float lr, float gradScale) override;
  double elasticSync(float lr) override;

  // Mini-batches per round: one synchronisation block (L, or 1 for Elastic-SGD with L = 0).
  int roundBatches() const { return std::max(1, opts_.L); }
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
  void save(const std::string& stepDir, int rank) const;
  void load(const std::string& stepDir, int rank);
  // Metric extras of the train record (annealed couplings, synchronisations).
  void addMetrics(std::vector<std::pair<std::string, double>>& extra) const;
  ParleOptimizer& optimizer() { return *opt_; }
  // This stage's part of the last evaluated master (host copies; empty before the first).
  const std::vector<Tensor>& lastMasterParams() const { return masterParams_; }
  const std::vector<Tensor>& lastMasterBuffers() const { return masterBuffers_; }
  std::string describe() const;

 private:
  void refreshBatchNorm(Executor& exec, int epoch);
  std::vector<Tensor> copyParams();
  std::vector<Tensor> copyBuffers();
  void putParams(const std::vector<Tensor>& v);
  void putBuffers(const std::vector<Tensor>& v);

  TrainConfig cfg_;
  ParleContext c_;
  ParleOptions opts_;
  std::unique_ptr<ParleOptimizer> opt_;
  std::vector<Param*> params_;
  std::vector<Buffer*> buffers_;
  Tensor flat_;  // host buffer of the master average
  std::vector<Tensor> masterParams_, masterBuffers_;  // the last evaluated master (host)
};

}  // namespace sw
