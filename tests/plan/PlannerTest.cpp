// The planner on a profile measured here (the synthetic MLP): which algorithms it plans and why
// not the others, a one-rank prediction equal to the profile's parts summed by hand, the
// staleness and memory it reports, and bad input (another model, a memory limit nothing fits).
#include <gtest/gtest.h>

#include <numeric>

#include "comm/Communicator.h"
#include "core/Error.h"
#include "plan/Planner.h"

namespace sw {
namespace {

const Profile& mlpProfile() {
  static const Profile p = [] {
    TrainConfig cfg = parseConfig(std::string(SW_SOURCE_DIR) + "/configs/synthetic_mlp.ini", {"runtime.threads=1"});
    CommPtr self = makeSelfCommunicator();
    Profile q = measureProfile(cfg, *self, {.rows = {8, 16, 32, 64}, .repeats = 1, .comm = false});
    q.origin = "mlp profile";
    return q;
  }();
  return p;
}

Cluster twoDevices() {
  Cluster c;
  c.origin = "test cluster";
  c.devicesPerNode = 2;
  c.intra = {.latency = 5e-6, .bandwidth = 5e9};
  return c;
}

const AlgoPlan& find(const std::vector<AlgoPlan>& v, const std::string& a) {
  for (const AlgoPlan& p : v)
    if (p.algo == a) return p;
  throw Error("no plan for " + a);
}

TEST(Profile, MeasuresEveryBlockAtEveryRowCount) {
  const Profile& p = mlpProfile();
  EXPECT_EQ(p.model, "mlp");
  ASSERT_FALSE(p.blocks.empty());
  for (const BlockProfile& b : p.blocks) {
    ASSERT_EQ(b.forward.size(), p.rows.size()) << b.name;
    for (double t : b.forward) EXPECT_GT(t, 0) << b.name;
    EXPECT_GT(b.outBytesPerRow, 0) << b.name;
  }
  EXPECT_GT(p.at(p.blocks[0].forward, 64), 0);
  // Interpolation goes through the measured points and between them.
  EXPECT_DOUBLE_EQ(p.at(p.blocks[0].forward, 16), p.blocks[0].forward[1]);
  const double mid = p.at(p.blocks[0].forward, 24);
  EXPECT_NEAR(mid, 0.5 * (p.blocks[0].forward[1] + p.blocks[0].forward[2]), 1e-12);
  const std::string path = ::testing::TempDir() + "mlp_profile.json";
  writeProfile(p, path);
  const Profile back = readProfile(path);
  EXPECT_EQ(back.blocks.size(), p.blocks.size());
  EXPECT_EQ(back.config, p.config);
  EXPECT_DOUBLE_EQ(back.blocks[1].backward[2], p.blocks[1].backward[2]);
}

TEST(Planner, OneRankPredictionIsTheProfileSummed) {
  const Profile& p = mlpProfile();
  const Cluster c = twoDevices();
  const Candidate k = evaluateCandidate(p, c, {.ranks = 1}, "bp", 0, 1, nullptr);
  const double n = double(p.batchSize);
  double t = p.overheadPerBatch + p.overheadPerMicrobatch + p.at(p.load, n) + p.at(p.loss, n);
  for (const BlockProfile& b : p.blocks) t += p.at(b.forward, n) + p.at(b.backward, n) + b.update;
  EXPECT_NEAR(k.stepSeconds, t, 1e-12);
  EXPECT_NEAR(k.samplesPerSecond, n / t, 1e-6);
  EXPECT_EQ(k.updatesPerRound, 1);
  // Memory: weights, their gradients and momentum; one micro-batch of activations held.
  double w = 0;
  for (const BlockProfile& b : p.blocks) w += b.paramBytes;
  EXPECT_DOUBLE_EQ(k.memory[0].weights, w);
  EXPECT_DOUBLE_EQ(k.memory[0].grads, w);
  EXPECT_DOUBLE_EQ(k.memory[0].optimizer, w);  // SGD with momentum: one buffer per parameter
  EXPECT_GT(k.memory[0].activations, 0);
}

TEST(Planner, PlansWhatCanRunAndSaysWhyNotTheRest) {
  const std::vector<AlgoPlan> v =
      planAll(mlpProfile(), twoDevices(), {.algos = {"bp", "dp", "1f1b", "pipedream"}, .ranks = 2});
  EXPECT_FALSE(find(v, "bp").feasible);
  EXPECT_NE(find(v, "bp").why.find("one rank"), std::string::npos) << find(v, "bp").why;
  const AlgoPlan& dp = find(v, "dp");
  ASSERT_TRUE(dp.feasible);
  EXPECT_EQ(dp.best.replicas, 2);
  const AlgoPlan& pd = find(v, "pipedream");
  ASSERT_TRUE(pd.feasible);
  bool pipelined = false;
  for (const Candidate& k : pd.shapes)
    if (k.stages == 2) {
      pipelined = true;
      EXPECT_EQ(k.staleness[0], 1);
      EXPECT_EQ(k.staleness[1], 0);
      EXPECT_GT(k.memory[0].stash, 0);
      // The overrides name the partition the prediction is for.
      EXPECT_NE(std::find(k.overrides.begin(), k.overrides.end(),
                          "pipe.partition=" + std::to_string(k.parts[1].begin)),
                k.overrides.end());
    }
  EXPECT_TRUE(pipelined);
  const std::string report = planReport(v, mlpProfile(), twoDevices());
  EXPECT_NE(report.find("overrides: train.algo="), std::string::npos) << report;
  EXPECT_NE(timelineSvg(dp.best).find("<svg"), std::string::npos);
}

TEST(Planner, AMemoryLimitNothingFitsAndAProfileOfAnotherModel) {
  const std::vector<AlgoPlan> v = planAll(mlpProfile(), twoDevices(), {.algos = {"dp"}, .ranks = 2, .memoryBytes = 1});
  EXPECT_FALSE(v[0].feasible);
  EXPECT_TRUE(v[0].overMemory);
  EXPECT_GT(v[0].smallestMemory, 1);
  try {
    (void)planAll(mlpProfile(), twoDevices(), {.ranks = 2, .overrides = {"model.hidden=32"}});
    ADD_FAILURE() << "a profile of another model was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("mlp profile: this profile was measured on"), std::string::npos) << e.what();
  }
  Cluster one = twoDevices();
  EXPECT_THROW((void)planAll(mlpProfile(), one, {.ranks = 3}), InputError);  // more ranks than devices
}

}  // namespace
}  // namespace sw

namespace sw {
namespace {

// PETRA's last stage keeps its contexts as backprop does; only earlier stages keep block inputs
// and rebuild the rest (algo/petra): one PETRA stage holds and costs what backprop does.
TEST(Planner, PetraOnOneStageHoldsWhatBackpropHolds) {
  static const Profile p = [] {
    TrainConfig cfg = parseConfig("", {"model.name=revnet18", "model.width=4", "data.name=synthetic",
                                       "data.synthetic_shape=1,16,16", "data.synthetic_train=64",
                                       "data.synthetic_test=16", "train.batch_size=16", "runtime.threads=1"});
    CommPtr self = makeSelfCommunicator();
    Profile q = measureProfile(cfg, *self, {.rows = {4, 8, 16}, .repeats = 1, .comm = false});
    q.origin = "revnet profile";
    return q;
  }();
  Cluster c;
  c.devicesPerNode = 2;
  c.intra = {.latency = 1e-6, .bandwidth = 1e10};
  const Candidate bp = evaluateCandidate(p, c, {.ranks = 1}, "bp", 0, 1, nullptr);
  const Candidate petra = evaluateCandidate(p, c, {.ranks = 1}, "petra", 0, 1, nullptr);
  EXPECT_DOUBLE_EQ(petra.memory[0].activations, bp.memory[0].activations);
  // Two stages: stage 0 keeps only block inputs, far less than its contexts.
  const Candidate two = evaluateCandidate(p, c, {.ranks = 2}, "petra", 2, 1, nullptr);
  const Candidate mp = evaluateCandidate(p, c, {.ranks = 2}, "mp", 2, 1, &two.parts);
  EXPECT_LT(two.memory[0].activations / two.sim.peakSlots[0], mp.memory[0].activations / mp.sim.peakSlots[0]);
  EXPECT_GT(two.memory[1].activations, 0);
}

}  // namespace
}  // namespace sw
