// End-to-end single-process training: learning on synthetic data, checkpoint round trip and
// stop/resume equivalence (bit-identical parameters), gradient accumulation semantics.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/TrainConfig.h"
#include "core/Error.h"
#include "train/Trainer.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

std::string freshDir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/sw_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  return d;
}

TrainConfig smallCfg(std::vector<std::string> extra = {}) {
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=512",
                                "data.synthetic_test=256", "data.synthetic_shape=1,12,12",
                                "model.name=mlp", "model.hidden=32", "train.batch_size=32",
                                "train.epochs=3", "optim.lr=0.05", "runtime.threads=1",
                                "train.seed=7"};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

std::vector<float> allParams(Trainer& t) {
  std::vector<float> v;
  for (Param* p : t.model().params()) v.insert(v.end(), p->value.data(), p->value.data() + p->value.numel());
  for (Buffer* b : t.model().buffers()) v.insert(v.end(), b->value.data(), b->value.data() + b->value.numel());
  return v;
}

std::string readFile(const std::string& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace

TEST(Trainer, LearnsSyntheticTask) {
  std::string dir = freshDir("learn");
  Trainer t(smallCfg(), dir);
  t.prepare();
  EvalResult r = t.run();
  EXPECT_GT(r.acc, 0.9);
  std::string m = readFile(dir + "/metrics.jsonl");
  EXPECT_NE(m.find("\"split\": \"test\""), std::string::npos);
  EXPECT_NE(readFile(dir + "/config.ini").find("[optim]"), std::string::npos);
}

TEST(Trainer, StopAndResumeIsBitIdentical) {
  // Reference: 3 epochs uninterrupted (lenet with BN and dropout exercises buffers and RNG).
  auto cfg = smallCfg({"model.name=lenet", "model.width=4", "data.synthetic_shape=1,28,28",
                       "model.dropout=0.2", "optim.name=adam", "optim.lr=0.01",
                       "train.accum_steps=2"});
  std::string refDir = freshDir("ref");
  Trainer ref(cfg, refDir);
  ref.prepare();
  ref.run();
  // Interrupted: stop after 10 optimizer steps (mid-epoch, mid-accumulation is avoided by
  // max_steps), then resume from the run directory.
  std::string dir = freshDir("resume");
  {
    auto c1 = cfg;
    c1.train.maxSteps = 10;
    c1.checkpoint.everySteps = 5;
    Trainer a(c1, dir);
    a.prepare();
    a.run();
  }
  // A half-written checkpoint (no COMMITTED marker) must be ignored.
  fs::create_directories(dir + "/checkpoints/step_999999999");
  std::ofstream(dir + "/checkpoints/step_999999999/rank_00000.h5") << "garbage";
  CheckpointStore store(dir);
  ASSERT_TRUE(store.latest().has_value());
  EXPECT_EQ(fs::path(*store.latest()).filename(), "step_000000010");
  Trainer b(cfg, dir, dir);
  b.prepare();
  EXPECT_EQ(b.progress().step, 10);
  b.run();
  EXPECT_EQ(allParams(b), allParams(ref));
  EXPECT_EQ(b.progress().step, ref.progress().step);
}

TEST(Trainer, ResumeRejectsMismatchedModel) {
  std::string dir = freshDir("mismatch");
  {
    auto c = smallCfg({"train.epochs=1"});
    Trainer a(c, dir);
    a.prepare();
    a.run();
  }
  Trainer b(smallCfg({"model.hidden=16"}), dir, dir);
  EXPECT_THROW(b.prepare(), InputError);
}

TEST(Trainer, AccumulationWithAveragingEqualsLargerBatch) {
  // Without BN or dropout, 2 accumulated half-batches averaged == one full batch step.
  auto full = smallCfg({"train.batch_size=64", "train.epochs=1", "train.max_steps=3"});
  auto half = smallCfg({"train.batch_size=32", "train.accum_steps=2", "train.epochs=1", "train.max_steps=3"});
  Trainer a(full, freshDir("full")), b(half, freshDir("half"));
  a.prepare();
  b.prepare();
  // Same data order: batches of 32 consecutive samples = halves of the 64-batches.
  a.run();
  b.run();
  auto pa = allParams(a), pb = allParams(b);
  ASSERT_EQ(pa.size(), pb.size());
  double maxd = 0, maxv = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    maxd = std::max(maxd, double(std::abs(pa[i] - pb[i])));
    maxv = std::max(maxv, double(std::abs(pa[i])));
  }
  EXPECT_LT(maxd, 1e-5 * maxv + 1e-6);
}

TEST(Trainer, LenetOnRealFashionMnist) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist")) {
    if (std::getenv("CI")) FAIL() << "dataset-fashion-mnist is not installed (tools/setup_debian.sh installs it)";
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  }
  auto cfg = parseConfig(std::string(SW_SOURCE_DIR) + "/configs/fmnist_lenet.ini",
                         {"data.limit_train=12000", "data.limit_test=2000", "train.epochs=2",
                          "runtime.threads=2"});
  Trainer t(cfg, freshDir("fmnist"));
  t.prepare();
  EvalResult r = t.run();
  std::printf("LeNet, 12k Fashion-MNIST samples, 2 epochs: test accuracy %.2f%%\n", 100 * r.acc);
  EXPECT_GE(r.acc, 0.80);
}

}  // namespace sw
