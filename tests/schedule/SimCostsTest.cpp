// The simulator with measured-style costs, against makespans computed by hand: per-stage costs
// (1F1B with unequal stages), priced messages on a slow link (GPipe), a collective's duration
// (dp over three replicas), the flushed pipelines' bubble (S-1)/(M+S-1) with equal costs, and the
// staleness an asynchronous pipeline implies.
#include <gtest/gtest.h>

#include "algo/Registry.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

// Every message costs `perMessage` + bytes / bandwidth; collectives `collective`.
class FixedComm final : public CommModel {
 public:
  FixedComm(double perMessage, double bandwidth, double collective = 0)
      : m_(perMessage), bw_(bandwidth), c_(collective) {}
  double message(int, int, double bytes) const override { return m_ + (bw_ > 0 ? bytes / bw_ : 0); }
  double allReduce(const std::vector<int>&, double) const override { return c_; }
  double broadcast(const std::vector<int>&, int, double) const override { return c_; }

 private:
  double m_, bw_, c_;
};

ScheduleSpec specOf(const Algorithm& a, int world, int microbatches) {
  ScheduleSpec s = a.plan(world);
  s.microbatches = microbatches;
  a.roundShape(s, 1);
  return s;
}

std::unique_ptr<Algorithm> algo(const std::string& name, int stages) {
  return makeAlgorithm(parseConfig("", {"train.algo=" + name, "pipe.stages=" + std::to_string(stages)}));
}

TEST(SimCosts, OneFOneBWithUnequalStages) {
  // Stage 0: F 1, B 2; stage 1: F 2, B 4; two micro-batches. By hand:
  //   s0 F0 [0,1]  F1 [1,2]                 B0 [7,9]           B1 [13,15]
  //   s1      F0 [1,3] B0 [3,7] F1 [7,9] B1 [9,13]
  auto a = algo("1f1b", 2);
  const ScheduleSpec spec = specOf(*a, 2, 2);
  SimCosts c;
  c.stage = {StageCosts{.forward = 1, .backward = 2, .inputGrad = 0}, StageCosts{.forward = 2, .backward = 4, .inputGrad = 0}};
  SimResult r = simulate(*a, spec, c);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_DOUBLE_EQ(r.makespan, 15);
  EXPECT_DOUBLE_EQ(r.busy[0], 6);
  EXPECT_DOUBLE_EQ(r.busy[1], 12);
  // Every message 0.5 later: act0 arrives 1.5, s1 B0 ends 7.5, grad0 arrives 8, s0 B0 [8,10];
  // s1 F1 [7.5,9.5] B1 [9.5,13.5], grad1 arrives 14, s0 B1 [14,16].
  FixedComm comm(0.5, 0);
  c.comm = &comm;
  r = simulate(*a, spec, c);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_DOUBLE_EQ(r.makespan, 16);
}

TEST(SimCosts, GPipeOnASlowLinkSerialisesMessages) {
  // F = B = 1 on both stages; activations and gradients of 10 bytes on a 5 bytes/s link (2 s
  // each, one at a time per direction). s0 F0 [0,1] -> arrives 3; F1 [1,2] -> link busy until
  // 3 -> arrives 5. s1 F0 [3,4], F1 [5,6], then both backwards [6,7], [7,8] with their
  // gradients arriving at 9 and 11; s0's backwards [9,10], [11,12].
  auto a = algo("gpipe", 2);
  const ScheduleSpec spec = specOf(*a, 2, 2);
  SimCosts c;
  const StageCosts st{.forward = 1, .backward = 1, .inputGrad = 0, .actBytes = 10, .gradBytes = 10};
  c.stage = {st, st};
  FixedComm comm(0, 5);
  c.comm = &comm;
  const SimResult r = simulate(*a, spec, c);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_DOUBLE_EQ(r.makespan, 12);
  EXPECT_NEAR(r.idleFraction[0], 1.0 - 4.0 / 12.0, 1e-12);
}

TEST(SimCosts, DataParallelWaitsForTheCollective) {
  // Three replicas: F 1, B 2, allreduce 5, update 0.5 -> 8.5.
  auto a = makeAlgorithm(parseConfig("", {"train.algo=dp", "train.batch_size=96"}));
  const ScheduleSpec spec = specOf(*a, 3, 1);
  SimCosts c;
  c.stage = {StageCosts{.forward = 1, .backward = 2, .update = 0.5, .inputGrad = 0, .paramBytes = 300}};
  FixedComm comm(0, 0, 5);
  c.comm = &comm;
  const SimResult r = simulate(*a, spec, c);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_DOUBLE_EQ(r.makespan, 8.5);
  for (double f : r.idleFraction) EXPECT_NEAR(f, 5.0 / 8.5, 1e-12);  // the collective counts as waiting
}

TEST(SimCosts, FlushedPipelinesRecoverTheBubbleBound) {
  for (const char* name : {"gpipe", "1f1b"})
    for (int S : {2, 4})
      for (int M : {4, 8}) {
        auto a = algo(name, S);
        const ScheduleSpec spec = specOf(*a, S, M);
        SimCosts c;
        c.stage.assign(size_t(S), StageCosts{.forward = 1, .backward = 2, .inputGrad = 0});
        const SimResult r = simulate(*a, spec, c);
        ASSERT_TRUE(r.ok) << r.error;
        EXPECT_DOUBLE_EQ(r.makespan, 3.0 * (M + S - 1)) << name << " S=" << S << " M=" << M;
        for (double f : r.idleFraction) EXPECT_NEAR(f, double(S - 1) / double(M + S - 1), 1e-12);
        for (int st : r.staleness) EXPECT_EQ(st, 0);
      }
}

TEST(SimCosts, AsynchronousPipelinesReportTheirStaleness) {
  // PipeDream on S stages: stage s computes a backward S-1-s optimizer steps after its forward.
  const int S = 4;
  auto a = algo("pipedream", S);
  const ScheduleSpec spec = specOf(*a, S, 16);
  const SimResult r = simulate(*a, spec, SimCosts{});
  ASSERT_TRUE(r.ok) << r.error;
  for (int s = 0; s < S; ++s) EXPECT_EQ(r.staleness[size_t(s)], S - 1 - s) << "stage " << s;
  EXPECT_GE(r.peakStash[0], S - 1);  // weight versions in flight on the first stage
  EXPECT_EQ(r.peakSlots[0], S);      // S micro-batches in flight at stage 0 in 1F1B
}

}  // namespace
}  // namespace sw
