// Interlocking backprop, one component per rank (mpirun with 2, 3 and 4 ranks), against
// single-process truth. Every rank also runs the single-process form (pipe.stages = 1, every
// component in one process: algo/interlocking/InterlockingLoop.h) on its own and compares what it owns:
//   - local, pairwise, 3-wise, sum, mean and n = K: the distributed run equals the single-process
//     run bit for bit - main nets, aux heads, BN statistics, test loss (seed check 5);
//   - n >= K (n = K and n = 9) equals global backprop on the same stages (`mp`), bitwise (check 2);
//   - random sleeps before every instruction on every rank change nothing (check 5's variant);
//   - stop at max_steps and resume equals the uninterrupted run, across ranks;
//   - 2 stages x 2 replicas (4 ranks) averages gradients: equals the full batch in one process;
//   - a split that does not give one component per rank, or one process asked of many ranks,
//     stops every rank with an input error.
// A ResNet-18 (width 4, BN everywhere) on synthetic 8x8 images is split by
// interlocking.blocks_per_component; the aux heads are conv8 + BN + pool + fc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "comm/Mpi.h"
#include "mpi/MpiTestUtil.h"
#include "config/TrainConfig.h"
#include "algo/interlocking/InterlockingAlgorithm.h"
#include "train/Trainer.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

using mpitest::runtime;
using mpitest::sharedDir;

// The resnet18 has 10 blocks: stem, 8 residual blocks, head.
std::string split(int K) { return K == 2 ? "4,rest" : K == 3 ? "3,3,rest" : K == 4 ? "2,3,2,rest" : "rest"; }

TrainConfig cfgWith(std::vector<std::string> extra) {
  const int S = runtime().world().size();
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=96", "data.synthetic_test=32",
                                "data.synthetic_shape=3,8,8", "model.name=resnet18", "model.width=4",
                                "train.batch_size=16", "train.epochs=2", "optim.lr=0.05", "optim.momentum=0.9",
                                "optim.weight_decay=2e-4", "runtime.threads=1", "train.seed=9", "checkpoint.every_epochs=0", "runtime.comm_timeout=60",
                                "interlocking.aux=conv8_bn_gbpl_fc", "interlocking.drain_every=4",
                                "interlocking.blocks_per_component=" + split(S)};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

std::vector<float> flat(const std::vector<Param*>& ps) {
  std::vector<float> v;
  for (Param* p : ps) v.insert(v.end(), p->value.data(), p->value.data() + p->value.numel());
  return v;
}

std::vector<float> flat(const std::vector<Buffer*>& bs) {
  std::vector<float> v;
  for (Buffer* b : bs) v.insert(v.end(), b->value.data(), b->value.data() + b->value.numel());
  return v;
}

std::unique_ptr<Trainer> trainDist(const TrainConfig& c, const std::string& dir, EvalResult* r = nullptr) {
  auto t = std::make_unique<Trainer>(c, dir, "", &runtime().world());
  t->prepare();
  EvalResult e = t->run();
  if (r) *r = e;
  return t;
}

// The same configuration with every component in this process (the self communicator).
std::unique_ptr<Trainer> trainAlone(std::vector<std::string> o, const std::string& dir, EvalResult* r = nullptr) {
  o.push_back("pipe.stages=1");
  auto t = std::make_unique<Trainer>(cfgWith(o), dir + "_rank" + std::to_string(runtime().world().rank()));
  t->prepare();
  EvalResult e = t->run();
  if (r) *r = e;
  return t;
}

struct Scheme {
  const char* name;
  std::vector<std::string> keys;
};

std::vector<Scheme> schemes() {
  const std::string K = std::to_string(runtime().world().size());
  return {{"local", {"train.algo=local"}},
          {"pairwise", {"train.algo=interlocking"}},
          {"3-wise", {"train.algo=interlocking", "interlocking.n=3"}},
          {"sum", {"train.algo=interlocking", "interlocking.pairwise_mode=sum"}},
          {"mean", {"train.algo=interlocking", "interlocking.pairwise_mode=mean"}},
          {"n=K", {"train.algo=interlocking", "interlocking.n=" + K}}};
}

TEST(Interlocking, OneComponentPerRankEqualsOneProcessBitwise) {
  const std::string dir = sharedDir("eq");
  for (const Scheme& s : schemes()) {
    EvalResult ed, es;
    auto d = trainDist(cfgWith(s.keys), dir + "/" + s.name, &ed);
    auto a = trainAlone(s.keys, dir + "/alone_" + s.name, &es);
    const BlockRange r = d->stageRange();
    const int k = runtime().world().rank();
    ASSERT_EQ(interlockingComponents(a->algorithm()).size(), size_t(runtime().world().size()));
    EXPECT_EQ(interlockingComponents(a->algorithm())[size_t(k)].begin, r.begin);
    // Main net and this component's aux head (the head's range holds none).
    EXPECT_EQ(flat(d->model().params(r)), flat(a->model().params(r))) << s.name << " component " << k;
    EXPECT_EQ(flat(d->model().buffers(r)), flat(a->model().buffers(r))) << s.name << " component " << k;
    EXPECT_EQ(d->model().params(r).size() > d->model().params(r, Aux::kExclude).size(),
              k + 1 < runtime().world().size()) << "aux head on every component but the last";
    EXPECT_EQ(ed.loss, es.loss) << s.name;
    EXPECT_EQ(ed.acc, es.acc) << s.name;
  }
  runtime().world().barrier();
}

TEST(Interlocking, NAtLeastKEqualsGlobalBackpropBitwise) {
  const std::string dir = sharedDir("global");
  const std::string cut = [] {
    // mp on the same stages: pipe.partition from the split (first block of stages 1..S-1).
    const int S = runtime().world().size();
    return S == 2 ? "4" : S == 3 ? "3,6" : "2,5,7";
  }();
  EvalResult eg;
  auto mp = trainDist(cfgWith({"train.algo=mp", "interlocking.blocks_per_component=", "pipe.partition=" + cut}), dir + "/mp", &eg);
  for (const std::string& n : {std::to_string(runtime().world().size()), std::string("9")}) {
    EvalResult e;
    auto il = trainDist(cfgWith({"train.algo=interlocking", "interlocking.n=" + n}), dir + "/n" + n, &e);
    const BlockRange r = il->stageRange();
    EXPECT_EQ(r.begin, mp->stageRange().begin);
    EXPECT_EQ(flat(il->model().params(r, Aux::kExclude)), flat(mp->model().params(r))) << "n " << n;
    EXPECT_EQ(flat(il->model().buffers(r, Aux::kExclude)), flat(mp->model().buffers(r))) << "n " << n;
    EXPECT_EQ(e.loss, eg.loss) << "n " << n;
  }
  runtime().world().barrier();
}

TEST(Interlocking, RandomDelaysChangeNothing) {
  const std::string dir = sharedDir("jitter");
  for (const char* n : {"2", "3"}) {
    const std::vector<std::string> o{"train.algo=interlocking", std::string("interlocking.n=") + n, "train.epochs=1"};
    auto a = trainDist(cfgWith(o), dir + "/plain" + n);
    auto o2 = o;
    o2.push_back("runtime.jitter_us=3000");
    auto b = trainDist(cfgWith(o2), dir + "/jitter" + n);
    EXPECT_EQ(flat(a->model().params(a->stageRange())), flat(b->model().params(b->stageRange()))) << "n " << n;
    EXPECT_EQ(flat(a->model().buffers(a->stageRange())), flat(b->model().buffers(b->stageRange()))) << "n " << n;
  }
  runtime().world().barrier();
}

TEST(Interlocking, StopAndResumeAcrossRanksIsBitIdentical) {
  Communicator& w = runtime().world();
  const std::string dir = sharedDir("resume");
  const std::vector<std::string> o{"train.algo=interlocking", "interlocking.drain_every=2"};
  auto ref = trainDist(cfgWith(o), dir + "/ref");
  {
    auto c = cfgWith(o);
    c.train.maxSteps = 4;  // mid-epoch (6 steps per epoch)
    Trainer a(c, dir + "/run", "", &w);
    a.prepare();
    a.run();
  }
  Trainer b(cfgWith(o), dir + "/run", dir + "/run", &w);
  b.prepare();
  EXPECT_EQ(b.progress().step, 4);
  b.run();
  EXPECT_EQ(flat(b.model().params(b.stageRange())), flat(ref->model().params(ref->stageRange())));
  EXPECT_EQ(flat(b.model().buffers(b.stageRange())), flat(ref->model().buffers(ref->stageRange())));
  w.barrier();
}

// Two replicas of a two-stage pipeline average their gradients (main nets and aux heads) before
// each step: the same as the full batch in one process, up to the allreduce's summation order.
// An MLP: batch norm would normalise over each replica's half batch instead.
TEST(Interlocking, ReplicasAverageGradients) {
  Communicator& w = runtime().world();
  if (w.size() != 4) GTEST_SKIP() << "needs 4 ranks (2 stages x 2 replicas)";
  const std::vector<std::string> o{"model.name=mlp", "model.hidden=24,20,16", "data.synthetic_shape=1,6,6",
                                   "interlocking.aux=fc", "interlocking.blocks_per_component=2,rest", "train.algo=interlocking"};
  auto withStages = [&](std::vector<std::string> x, const std::string& s) {
    x.push_back("pipe.stages=" + s);
    return x;
  };
  const std::string dir = sharedDir("replicas");
  auto d = trainDist(cfgWith(withStages(o, "2")), dir + "/d");
  Trainer a(cfgWith(withStages(o, "1")), dir + "/alone_rank" + std::to_string(w.rank()));
  a.prepare();
  a.run();
  const auto x = flat(d->model().params(d->stageRange())), y = flat(a.model().params(d->stageRange()));
  ASSERT_EQ(x.size(), y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(double(x[i]) - y[i]) / std::max(1e-3, std::abs(double(y[i]))));
  EXPECT_LE(worst, 1e-5);
  w.barrier();
}

TEST(Interlocking, ComponentAndRankCountsMustAgree) {
  Communicator& w = runtime().world();
  const std::string dir = sharedDir("bad");
  const std::string wrong = w.size() == 2 ? "2,2,rest" : "4,rest";
  Trainer a(cfgWith({"train.algo=interlocking", "interlocking.blocks_per_component=" + wrong}), dir + "/a", "", &w);
  EXPECT_ANY_THROW(a.prepare());
  Trainer b(cfgWith({"train.algo=local", "pipe.stages=1"}), dir + "/b", "", &w);
  EXPECT_ANY_THROW(b.prepare());
  w.barrier();
}

}  // namespace
}  // namespace sw
