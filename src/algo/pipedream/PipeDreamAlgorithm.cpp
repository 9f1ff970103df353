// pipedream and spectrain as one plug-in: the schedule, the rank-count rules, the per-step
// learning rate (SpecTrain v2: stage k steps S - k times as far, seed-spectrain.md 2.3) and
// SpecTrain v1's PredictWeights op.
#include "algo/pipedream/PipeDreamAlgorithm.h"

#include "core/Error.h"

namespace sw {
namespace {

class PipeDream : public Algorithm {
 public:
  PipeDream(const TrainConfig& cfg, PipeDreamKind kind)
      : Algorithm(cfg), spectrain_(kind == PipeDreamKind::kSpecTrain), v1_(spectrain_ && cfg.spectrain.version == 1) {
    sched_ = v1_ ? makeSpecTrainSchedule() : makePipeDreamSchedule();
  }
  ScheduleSpec plan(int world) const override {
    if (spectrain_ && cfg_.optim.kind != OptimKind::kSgd)
      throw ConfigError("train.algo = spectrain predicts weights along SGD momentum: optim.name must be sgd");
    if (cfg_.pipe.microbatches != 1 || cfg_.train.accumSteps != 1)
      throw ConfigError("train.algo = " + cfg_.train.algo + " updates after every mini-batch: "
                        "pipe.microbatches and train.accum_steps must be 1");
    ScheduleSpec s = shape(world, stagesOr(world, world));
    PipeDreamParams& pd = s.params.set<PipeDreamParams>();
    pd.verticalSync = cfg_.pipedream.verticalSync;
    pd.stash = cfg_.pipedream.stash || spectrain_;
    pd.maxDistance = cfg_.spectrain.maxDistance;
    return s;
  }
  void bind(AlgoEnv& env) override {
    stage_ = env.coord.stage;
    stages_ = env.coord.stages;
    if (v1_) env.opt->keepLastGradient(true);
  }
  Program build(const RankCoord& me, const ScheduleSpec& spec) const override { return sched_->build(me.stage, spec); }
  bool flushed() const override { return false; }
  int roundBatches(int64_t nb) const override {
    const int drain = cfg_.pipedream.drainEvery;
    return int(drain > 0 ? std::min<int64_t>(drain, nb) : nb);
  }
  void rates(const RoundPos& pos, RoundInputs& ri) const override {
    perStepRates(pos, ri, spectrain_ && !v1_ ? float(stages_ - stage_) : 1.f);
  }
  void registerOps(OpTable& t) override {
    // Weights predicted `version` steps ahead (tag 1: along m B + D for a forward, tag 0: along
    // m B for a backward); the next Forward/Backward with kVersionPredicted swaps them in.
    t.set(Op::kPredictWeights, [](OpCall& c) {
      Executor& ex = c.ex;
      ex.useVersion(-1);
      ex.setPredictedValid(ex.stage().opt->predict(c.ri.lr(c.st.updates), float(c.in.version), c.in.tag == 1,
                                                   ex.predicted()));
    }, OpTime::kOptimizer);
  }

 private:
  bool spectrain_, v1_;
  int stage_ = 0, stages_ = 1;
  std::unique_ptr<Schedule> sched_;
};

}  // namespace

std::unique_ptr<Algorithm> makePipeDream(const TrainConfig& cfg, PipeDreamKind kind) {
  return std::make_unique<PipeDream>(cfg, kind);
}

}  // namespace sw
