// The Validator itself: evaluation programs pass; broken programs are caught (unmatched send, mb
// mismatch, deadlock, read before write, missing stash, a collective not every replica reaches);
// an unknown algorithm is a ConfigError.
#include <gtest/gtest.h>

#include "comm/Topology.h"
#include "core/Error.h"
#include "algo/Registry.h"
#include "nn/Partition.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

TEST(Schedule, EvalProgramsValid) {
  for (int S = 1; S <= 8; ++S)
    for (int M = 1; M <= 16; M += 5) {
      ScheduleSpec spec{.stages = S, .replicas = 1, .microbatches = M, .phase = Phase::kEval};
      SimResult r = simulate(*makeSchedule("gpipe"), spec);
      ASSERT_TRUE(r.ok) << r.error;
    }
}

// Two-stage programs written by hand, broken on purpose.
Program stage0(int M) { return makeSchedule("gpipe")->build(0, {.stages = 2, .microbatches = M}); }
Program stage1(int M) { return makeSchedule("gpipe")->build(1, {.stages = 2, .microbatches = M}); }

TEST(Validator, CatchesAnUnmatchedSend) {
  Program p1 = stage1(2);
  // Drop stage 1's backward of mb 0 (and with it the gradient it sends).
  for (Step& s : p1) std::erase_if(s, [](const Instr& in) { return in.mb == 0 && in.op == Op::kRecvAct; });
  SimResult r = simulatePrograms({stage0(2), p1}, {.stages = 2, .microbatches = 2});
  EXPECT_FALSE(r.ok);
}

TEST(Validator, CatchesAMicroBatchMismatch) {
  Program p1 = stage1(2);
  std::swap(p1[0], p1[1]);  // stage 1 receives mb 1 first, stage 0 sends mb 0 first
  SimResult r = simulatePrograms({stage0(2), p1}, {.stages = 2, .microbatches = 2});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("expects mb"), std::string::npos) << r.error;
}

TEST(Validator, CatchesADeadlock) {
  // Stage 0 waits for a gradient before it ever sends the activation the gradient depends on.
  Program p0;
  p0.push_back({{.op = Op::kLoad, .mb = 0, .slot = 0}, {.op = Op::kForward, .mb = 0, .slot = 0},
                {.op = Op::kRecvGrad, .mb = 0, .slot = 0, .peer = 1, .tag = kTagGrad},
                {.op = Op::kBackward, .mb = 0, .slot = 0},
                {.op = Op::kSendAct, .mb = 0, .slot = 0, .peer = 1, .tag = kTagAct}});
  p0.push_back({{.op = Op::kOptimizerStep}});
  SimResult r = simulatePrograms({p0, stage1(1)}, {.stages = 2, .microbatches = 1});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("deadlock"), std::string::npos) << r.error;
}

TEST(Validator, CatchesReadBeforeWriteAndLiveSlotReuse) {
  Program p;
  p.push_back({{.op = Op::kForward, .mb = 0, .slot = 0}});  // nothing loaded
  EXPECT_FALSE(simulatePrograms({p}, {.stages = 1}).ok);
  Program q;
  q.push_back({{.op = Op::kLoad, .mb = 0, .slot = 0}, {.op = Op::kForward, .mb = 0, .slot = 0},
               {.op = Op::kLoad, .mb = 1, .slot = 0}});  // slot 0 still holds mb 0
  SimResult r = simulatePrograms({q}, {.stages = 1, .microbatches = 2});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("still holds"), std::string::npos) << r.error;
}

TEST(Validator, CatchesAMissingWeightStash) {
  Program p;
  p.push_back({{.op = Op::kLoad, .mb = 0, .slot = 0}, {.op = Op::kForward, .mb = 0, .slot = 0, .version = 0},
               {.op = Op::kOptimizerStep},
               {.op = Op::kBackward, .mb = 0, .slot = 0, .version = 0}});  // version 0 was never stashed
  SimResult r = simulatePrograms({p}, {.stages = 1});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("stashed"), std::string::npos) << r.error;
}

TEST(Validator, CatchesAReductionNotAllReplicasReach) {
  Program a = makeSchedule("dp")->build(0, {.replicas = 2, .microbatches = 1});
  Program b = a;
  std::erase_if(b.back(), [](const Instr& in) { return in.op == Op::kReduceGrads; });
  EXPECT_FALSE(simulatePrograms({a, b}, {.stages = 1, .replicas = 2}).ok);
}

TEST(Schedule, UnknownOrUnscheduledAlgorithmIsAConfigError) {
  EXPECT_THROW(makeSchedule("nope"), ConfigError);
}

}  // namespace
}  // namespace sw
