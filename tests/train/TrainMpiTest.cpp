// Distributed training against single-process truth, under mpirun with 2, 3 and 4 ranks. Every
// rank also trains the single-process reference on its own (self communicator) and compares the
// parameters of the blocks it owns:
//   dp on N ranks            == bp on the full batch (1e-5 relative; the allreduce reorders sums)
//   mp, 1f1b (S = N stages)  == bp with the same accumulation, bitwise (same arithmetic order)
//   gpipe                    == the same within 1e-6 (backward runs last-in-first-out)
//   pipedream, drained every mini-batch == bp bitwise (no staleness); with staleness it trains
//   S stages x R replicas    == bp on the full batch (1e-5)
//   stop at max_steps + resume == uninterrupted, bitwise, across ranks
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "comm/Mpi.h"
#include "mpi/MpiTestUtil.h"
#include "train/TrainMatch.h"
#include "config/TrainConfig.h"
#include "coord/Coordinator.h"
#include "data/Dataset.h"
#include "nn/Zoo.h"
#include "train/Trainer.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

using mpitest::runtime;
using mpitest::sharedDir;

TEST(Train, DataParallelEqualsFullBatchBackprop) {
  expectMatches({"train.algo=dp"}, {"train.algo=bp"}, 1e-5, "dp");
}

// Tiny buckets: several allreduces launched block by block during the backward.
TEST(Train, DataParallelWithSmallBucketsEqualsFullBatchBackprop) {
  expectMatches({"train.algo=dp", "dp.bucket_mb=0.002"}, {"train.algo=bp"}, 1e-5, "dp_buckets");
}

TEST(Train, ModelParallelEqualsBackpropBitwise) {
  expectMatches({"train.algo=mp", "pipe.microbatches=3", "pipe.balance=macs"},
                {"train.algo=bp", "train.batch_size=16", "train.accum_steps=3"}, 0, "mp");
}

TEST(Train, OneFOneBEqualsBackpropBitwise) {
  expectMatches({"train.algo=1f1b", "pipe.microbatches=4", "pipe.balance=macs"},
                {"train.algo=bp", "train.batch_size=12", "train.accum_steps=4"}, 0, "1f1b");
}

TEST(Train, GPipeEqualsBackprop) {
  expectMatches({"train.algo=gpipe", "pipe.microbatches=4", "pipe.balance=time"},
                {"train.algo=bp", "train.batch_size=12", "train.accum_steps=4"}, 1e-5, "gpipe");
}

TEST(Train, DrainedPipeDreamEqualsBackpropBitwise) {
  expectMatches({"train.algo=pipedream", "pipedream.drain_every=1", "train.batch_size=16"},
                {"train.algo=bp", "train.batch_size=16"}, 0, "pipedream_drained");
}

TEST(Train, StagesTimesReplicasEqualsFullBatch) {
  if (runtime().world().size() % 2 != 0) GTEST_SKIP() << "needs an even rank count";
  const std::string s = std::to_string(runtime().world().size() / 2);
  expectMatches({"train.algo=1f1b", "pipe.stages=" + s, "pipe.microbatches=2", "pipe.balance=macs"},
                {"train.algo=bp", "train.batch_size=24", "train.accum_steps=2"}, 1e-5, "stages_x_replicas");
}

// PipeDream with vertical sync is exactly SGD with delayed gradients: every stage applies the
// k-th update from the gradient of mini-batch k-1 taken at the model version stage 0 used for
// it, W(max(0, j - (S-1))) for the j-th mini-batch of a round (rounds start drained). The
// reference below runs that recurrence on one process with whole-model forward/backward.
TEST(Train, VerticalSyncPipeDreamEqualsDelayedSgd) {
  Communicator& w = runtime().world();
  const int S = w.size();
  const std::vector<std::string> o{"train.algo=pipedream", "pipedream.vertical_sync=true", "pipedream.drain_every=10",
                                   "train.batch_size=16", "optim.momentum=0.9", "optim.lr=0.03"};
  Trainer d(cfgWith(o), sharedDir("delayed") + "/d", "", &w);
  d.prepare();
  d.run();

  TrainConfig cfg = cfgWith(o);
  auto be = makeBackend(cfg.runtime);
  DataSplits data = loadData(cfg.data);
  BatchLoader loader(data.train, cfg.train.batchSize, cfg.train.seed, Shard{}, cfg.augment, Shuffle::kYes,
                     DropLast::kNo, Augment::kYes);
  auto model = buildModel(*be, cfg.model, loader.sampleShape(), data.train.classes, cfg.train.seed);
  Optimizer opt(*be, model->params(), cfg.optim);
  LrSchedule lr(cfg.lr);
  SoftmaxCrossEntropy loss(*be);
  auto params = model->params();
  auto snapshot = [&] {
    std::vector<Tensor> v;
    for (Param* p : params) v.push_back(p->value.clone());
    return v;
  };
  const int64_t nb = loader.batchesPerEpoch();
  for (int e = 0; e < cfg.train.epochs; ++e) {
    loader.seek(e, 0);
    std::vector<std::vector<Tensor>> versions;  // weights at each version of the round
    for (int64_t b = 0; b < nb; ++b) {
      const int j = int(b % cfg.pipedream.drainEvery);
      if (j == 0) versions.clear();
      versions.push_back(snapshot());
      Batch batch;
      ASSERT_TRUE(loader.next(batch));
      const auto& use = versions[size_t(std::max(0, j - (S - 1)))];
      std::vector<Tensor> live;
      for (size_t i = 0; i < params.size(); ++i) {
        live.push_back(params[i]->value);
        params[i]->value = use[i].clone();
      }
      Ctx ctx, lctx;
      Tensor logits = model->forward(batch.x, ctx, Mode::kTrain);
      loss.forward(logits, batch.labels, lctx);
      model->backward(loss.backward(lctx), ctx);
      for (size_t i = 0; i < params.size(); ++i) params[i]->value = live[i];
      opt.step(lr.at(e, b, nb));
      model->zeroGrad();
    }
  }
  const auto a = stageParams(d, d.stageRange());
  std::vector<float> ref;
  for (Param* p : model->params(d.stageRange()))
    ref.insert(ref.end(), p->value.data(), p->value.data() + p->value.numel());
  EXPECT_EQ(a, ref) << "stage " << d.coord().stage;
  w.barrier();
}

TEST(Train, StopAndResumeAcrossRanksIsBitIdentical) {
  Communicator& w = runtime().world();
  const std::string dir = sharedDir("resume");
  const std::vector<std::string> base{"train.algo=1f1b", "pipe.microbatches=2", "pipe.balance=macs",
                                      "train.epochs=3", "optim.name=adam", "optim.lr=0.005"};
  Trainer ref(cfgWith(base), dir + "/ref", "", &w);
  ref.prepare();
  ref.run();
  {
    auto c = cfgWith(base);
    c.train.maxSteps = 11;  // mid-epoch (8 steps per epoch)
    Trainer a(c, dir + "/run", "", &w);
    a.prepare();
    a.run();
  }
  Trainer b(cfgWith(base), dir + "/run", dir + "/run", &w);
  b.prepare();
  EXPECT_EQ(b.progress().step, 11);
  b.run();
  EXPECT_EQ(stageParams(b, b.stageRange()), stageParams(ref, ref.stageRange()));
  w.barrier();
}

TEST(Train, BadInputOnOneRankStopsEveryRank) {
  Communicator& w = runtime().world();
  if (w.size() < 2) GTEST_SKIP();
  // pipe.stages that does not divide the world is caught before data is read, on every rank.
  Trainer t(cfgWith({"train.algo=1f1b", "pipe.stages=" + std::to_string(w.size() + 1)}), sharedDir("bad") + "/x", "", &w);
  EXPECT_THROW(t.prepare(), InputError);
  // Resuming from a directory with no checkpoint: InputError on every rank.
  Trainer r(cfgWith({"train.algo=dp"}), sharedDir("bad2") + "/x", sharedDir("bad3"), &w);
  EXPECT_THROW(r.prepare(), InputError);
}

}  // namespace
}  // namespace sw
