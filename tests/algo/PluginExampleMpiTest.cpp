// How to add an algorithm, kept true by a test (docs/architecture.md walks through it): a whole
// algorithm written inside this file - data parallel training with an exponential moving average
// of the weights (Polyak-Ruppert averaging; Polyak and Juditsky, SIAM J. Control Optim. 30(4),
// 1992), evaluated on the average - registered with one call, checked by the validator, and run
// as a real 2-rank job. It touches no file outside this test.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "mpi/MpiTestUtil.h"
#include "algo/Registry.h"
#include "config/TrainConfig.h"
#include "train/Trainer.h"

namespace sw {
namespace {
using mpitest::runtime;
using mpitest::sharedDir;

constexpr float kDecay = 0.5f;

class EmaDataParallel : public Algorithm {
 public:
  explicit EmaDataParallel(const TrainConfig& cfg) : Algorithm(cfg) {}

  // Every rank a replica of the whole model (the checks of shape(): rank count, batch split).
  ScheduleSpec plan(int world) const override { return shape(world, 1); }

  // Per micro-batch Load, Forward, Backward; then ReduceGrads and OptimizerStep.
  Program build(const RankCoord& me, const ScheduleSpec& spec) const override {
    Program p;
    for (int mb = 0; mb < spec.microbatches; ++mb) {
      Step s = detail::forwardStep(me.stage, 1, mb, 0);
      const Step b = detail::backwardStep(me.stage, 1, mb, 0);
      s.insert(s.end(), b.begin(), b.end());
      p.push_back(std::move(s));
    }
    p.push_back(detail::updateStep(spec));
    return p;
  }

  void bind(AlgoEnv& env) override {
    be_ = env.be;
    params_ = env.model->params(env.range);
  }

  // The one op it changes: after the shared optimizer step, ema = d ema + (1 - d) w.
  void registerOps(OpTable& t) override {
    t.set(Op::kOptimizerStep, [this, base = t.get(Op::kOptimizerStep)](OpCall& c) {
      base(c);
      for (size_t i = 0; i < params_.size(); ++i) {
        const Tensor& w = params_[i]->value;
        if (ema_.size() <= i) {
          ema_.push_back(be_->empty(w.shape()));
          be_->copy(w, ema_.back());
          continue;
        }
        be_->scale(ema_[i], kDecay);
        be_->axpy(1.f - kDecay, w, ema_[i]);
      }
    }, OpTime::kOptimizer);
  }

  // The reported test accuracy is the average's.
  EvalResult evaluateTest(int, Executor&, const std::function<EvalResult()>& plain) override {
    swapIn();
    const EvalResult r = plain();
    swapIn();
    return r;
  }

  const std::vector<Tensor>& average() const { return ema_; }

 private:
  void swapIn() {
    for (size_t i = 0; i < ema_.size(); ++i) std::swap(params_[i]->value, ema_[i]);
  }
  Backend* be_ = nullptr;
  std::vector<Param*> params_;
  std::vector<Tensor> ema_;
};

void registerOnce() {
  static const bool done = [] {
    registerAlgorithm({"ema_dp", "tests/algo", "data parallel with a moving average of the weights", "",
                       [](const TrainConfig& cfg) { return std::make_unique<EmaDataParallel>(cfg); }});
    return true;
  }();
  (void)done;
}

TrainConfig cfgWith(std::vector<std::string> extra) {
  std::vector<std::string> o = {"model.name=mlp", "model.hidden=16", "data.name=synthetic", "data.synthetic_train=256",
                                "data.synthetic_test=64", "data.synthetic_shape=1,4,4", "train.batch_size=32",
                                "train.epochs=1", "checkpoint.every_epochs=0", "train.log_every_seconds=1000"};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

std::vector<float> flat(Backend& be, const std::vector<Tensor>& ts) {
  std::vector<float> v;
  for (const Tensor& t : ts) {
    const Tensor h = be.toHost(t);
    v.insert(v.end(), h.data(), h.data() + h.numel());
  }
  return v;
}

std::vector<float> weights(Trainer& t) {
  std::vector<Tensor> ts;
  for (Param* p : t.model().params()) ts.push_back(p->value);
  return flat(t.backend(), ts);
}

TEST(PluginExample, RegistersAndPassesTheValidator) {
  registerOnce();
  EXPECT_NE(algorithmNames().find("ema_dp"), std::string::npos);
  auto a = makeAlgorithm(cfgWith({"train.algo=ema_dp"}));
  for (int replicas : {1, 2, 4})
    for (int mb : {1, 3}) {
      ScheduleSpec spec = a->plan(replicas);
      spec.microbatches = mb;
      const SimResult r = simulate(*a, spec);
      EXPECT_TRUE(r.ok) << replicas << " replicas, " << mb << " micro-batches: " << r.error;
    }
  EXPECT_THROW(makeAlgorithm(cfgWith({"train.algo=ema_dq"})), ConfigError);
}

// Training is data parallel's bit for bit; the average after two steps is (w1 + w2) / 2, from two
// dp runs of one and two steps.
TEST(PluginExample, RunsOnTwoRanksAndAveragesTheWeights) {
  registerOnce();
  Communicator& w = runtime().world();
  const std::string dir = sharedDir("plugin");
  Trainer dp1(cfgWith({"train.algo=dp", "train.max_steps=1"}), dir + "/dp1", "", &w);
  dp1.run();
  Trainer dp2(cfgWith({"train.algo=dp", "train.max_steps=2"}), dir + "/dp2", "", &w);
  dp2.run();
  Trainer ema(cfgWith({"train.algo=ema_dp", "train.max_steps=2"}), dir + "/ema", "", &w);
  ema.run();
  EXPECT_EQ(weights(ema), weights(dp2)) << "the plug-in must not change training";
  const std::vector<float> w1 = weights(dp1), w2 = weights(dp2);
  const std::vector<float> avg = flat(ema.backend(), ema.algorithm<EmaDataParallel>().average());
  ASSERT_EQ(avg.size(), w1.size());
  size_t off = 0;
  for (size_t i = 0; i < avg.size(); ++i) off += std::fabs(avg[i] - (kDecay * w1[i] + (1 - kDecay) * w2[i])) > 1e-6f;
  EXPECT_EQ(off, 0u) << off << " of " << avg.size() << " averaged weights differ from (w1 + w2) / 2";
  // The reported test evaluation is the average's; the live weights are dp's.
  const DataSplits data = loadData(cfgWith({}).data);
  const EvalResult live = ema.evaluate(data.test), reported = ema.evaluateTest(0);
  EXPECT_EQ(live.loss, dp2.evaluate(data.test).loss);
  EXPECT_NE(reported.loss, live.loss);
  EXPECT_EQ(weights(ema), weights(dp2)) << "evaluateTest must put the live weights back";
  w.barrier();
}

}  // namespace
}  // namespace sw
