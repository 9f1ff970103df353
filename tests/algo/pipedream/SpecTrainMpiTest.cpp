// SpecTrain under mpirun with 2, 3 and 4 ranks (one stage per rank), against single-process
// truth: v1 == a single-process replay of its definition (seed-spectrain.md 2.2: each stage's
// 1F1B sequence, forwards on W - lr s_f (m B + D), backwards on W - lr s_b m B), bitwise; capped
// at distance 0 == pipedream without stashing, bitwise; one stage == dp.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <map>

#include "algo/AsyncReplay.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

void replaySpecTrain(Replay& r) {
  const int S = r.S();
  for (auto& o : r.opts) o->keepLastGradient(true);
  auto predicted = [&](int k, int s, bool withGrad) {
    std::vector<Tensor> w = r.copyOf(k);
    if (s == 0 || r.opts[k]->stepCount() == 0) return w;
    const float m = r.cfg.optim.momentum, lr = r.cfg.lr.lr;
    // Elementary arithmetic through the backend's axpy (whether it fuses multiply-adds is the
    // compiler's choice, so a hand-written loop could differ in the last bit).
    for (size_t i = 0; i < w.size(); ++i) {
      const ParamState& st = r.opts[k]->state()[i];
      Tensor dir = withGrad ? st.lastD.clone() : Tensor::zeros(w[i].shape());
      if (st.buf.defined()) r.be->axpy(m, st.buf, dir);  // momentum 0: no buffer
      r.be->axpy(-lr * float(s), dir, w[i]);
    }
    return w;
  };
  const int64_t nb = r.loader->batchesPerEpoch();
  for (int e = 0; e < r.cfg.train.epochs; ++e) {
    r.loader->seek(e, 0);
    for (int64_t b0 = 0; b0 < nb; b0 += r.cfg.pipedream.drainEvery) {
      const int M = int(std::min<int64_t>(r.cfg.pipedream.drainEvery, nb - b0));
      std::vector<Batch> batches(M);
      for (auto& b : batches) ASSERT_TRUE(r.loader->next(b));
      std::vector<std::vector<OrderItem>> order(S);
      std::vector<size_t> pc(S, 0);
      for (int k = 0; k < S; ++k) order[k] = oneFOneBOrder(k, S, M);
      std::map<std::pair<int, int>, Tensor> act, grad;  // (stage, mb) -> output / input gradient
      std::map<std::pair<int, int>, Ctx> ctx, lctx;
      bool progress = true;
      while (progress) {
        progress = false;
        for (int k = 0; k < S; ++k) {
          if (pc[k] == order[k].size()) continue;
          const OrderItem it = order[k][pc[k]];
          const int sf = k / 2 + S - k - 1, sb = k / 2;
          if (it.forward) {
            if (k > 0 && !act.count({k - 1, it.mb})) continue;
            Tensor x = k == 0 ? batches[it.mb].x : act.at({k - 1, it.mb});
            std::vector<Tensor> w = predicted(k, sf, true);
            r.swapIn(k, w);
            Tensor y = r.model->forward(x, ctx[{k, it.mb}], Mode::kTrain, r.stages[k]);
            r.swapIn(k, w);
            if (k == S - 1) r.loss->forward(y, batches[it.mb].labels, lctx[{k, it.mb}]);
            else act[{k, it.mb}] = y;
          } else {
            if (k < S - 1 && !grad.count({k + 1, it.mb})) continue;
            Tensor dy = k == S - 1 ? r.loss->backward(lctx.at({k, it.mb})) : grad.at({k + 1, it.mb});
            std::vector<Tensor> w = predicted(k, sb, false);
            r.swapIn(k, w);
            Tensor dx = r.model->backward(dy, ctx.at({k, it.mb}), r.stages[k], k == 0 ? InputGrad::kSkip : InputGrad::kNeeded);
            r.swapIn(k, w);
            grad[{k, it.mb}] = dx;
            r.step(k);
          }
          ++pc[k];
          progress = true;
        }
      }
    }
  }
}

TEST(SpecTrain, VersionOneEqualsItsDefinitionReplayedOnOneProcess) {
  const std::vector<std::string> o{"train.algo=spectrain", "pipedream.drain_every=6"};
  auto d = trainDist(mlpCfg(o), sharedDir("st1") + "/d");
  Replay r(mlpCfg(o));
  replaySpecTrain(r);
  const int k = runtime().world().rank();
  EXPECT_EQ(flat(d->model().params(d->stageRange())), flat(r.model->params(r.stages[k]))) << "stage " << k;
  runtime().world().barrier();
}

// With momentum 0 SpecTrain does NOT reduce to pipedream without stashing (seed-spectrain.md 7,
// check 6): forwards still run on W - lr s_f D. The replay shows that it predicts exactly so.
TEST(SpecTrain, ZeroMomentumStillPredictsAlongTheLastGradient) {
  const std::vector<std::string> o{"train.algo=spectrain", "pipedream.drain_every=6", "optim.momentum=0"};
  const std::string dir = sharedDir("st_m0");
  auto d = trainDist(mlpCfg(o), dir + "/d");
  Replay r(mlpCfg(o));
  replaySpecTrain(r);
  const int k = runtime().world().rank();
  EXPECT_EQ(flat(d->model().params(d->stageRange())), flat(r.model->params(r.stages[k]))) << "stage " << k;
  auto plain = trainDist(mlpCfg({"train.algo=pipedream", "pipedream.stash=false", "pipedream.drain_every=6", "optim.momentum=0"}),
                         dir + "/plain");
  if (k == 0) {
    EXPECT_NE(flat(d->model().params(d->stageRange())), flat(plain->model().params(plain->stageRange())));
  }
  runtime().world().barrier();
}

TEST(SpecTrain, DistanceZeroEqualsPipeDreamWithoutStashing) {
  const std::string dir = sharedDir("st0");
  auto a = trainDist(mlpCfg({"train.algo=spectrain", "spectrain.max_distance=0"}), dir + "/a");
  auto b = trainDist(mlpCfg({"train.algo=pipedream", "pipedream.stash=false"}), dir + "/b");
  EXPECT_EQ(flat(a->model().params(a->stageRange())), flat(b->model().params(b->stageRange())));
  // ... and prediction changes the trajectory.
  auto c = trainDist(mlpCfg({"train.algo=spectrain"}), dir + "/c");
  if (runtime().world().rank() == 0) {
    EXPECT_NE(flat(a->model().params(a->stageRange())), flat(c->model().params(c->stageRange())));
  }
  runtime().world().barrier();
}

TEST(SpecTrain, OneStageEqualsDataParallel) {
  const std::string dir = sharedDir("st_dp");
  auto dp = trainDist(mlpCfg({"train.algo=dp", "pipe.partition=", "train.batch_size=24"}), dir + "/dp");
  for (const char* v : {"1", "2"}) {
    auto st = trainDist(mlpCfg({"train.algo=spectrain", "pipe.stages=1", "pipe.partition=", "train.batch_size=24", std::string("spectrain.version=") + v}),
                        dir + "/st" + v);
    EXPECT_EQ(flat(st->model().params()), flat(dp->model().params())) << "version " << v;
  }
  runtime().world().barrier();
}
}  // namespace
}  // namespace sw
