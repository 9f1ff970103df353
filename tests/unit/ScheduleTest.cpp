// Schedules as data, checked without MPI or a device: every algorithm over stages 1-8 x
// micro-batches 1-16 (and replicas) passes the Validator; flushed pipelines reach exactly the
// (S-1)/(M+S-1) idle bound; activation memory (slots) is what each schedule promises; broken
// programs are caught (unmatched send, mb mismatch, deadlock, read before write, missing stash).
// Also the topology and the stage partitioners.
#include <gtest/gtest.h>

#include "comm/Topology.h"
#include "core/Error.h"
#include "algo/Registry.h"
#include "nn/Partition.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

TEST(Schedule, EveryAlgorithmValidOverTheGrid) {
  for (const char* algo : {"bp", "dp", "mp", "gpipe", "1f1b", "pipedream", "spectrain", "petra"}) {
    auto sched = makeSchedule(algo);
    const int maxS = std::string(algo) == "bp" || std::string(algo) == "dp" ? 1 : 8;  // one stage per replica
    for (int S = 1; S <= maxS; ++S)
      for (int M = 1; M <= 16; ++M)
        for (int R : {1, 2})
          for (bool vs : {false, true}) {
            if (vs && std::string(algo) != "pipedream") continue;
            ScheduleSpec spec{.stages = S, .replicas = R, .microbatches = M, .verticalSync = vs};
            SimResult r = simulate(*sched, spec);
            ASSERT_TRUE(r.ok) << algo << " S=" << S << " M=" << M << " R=" << R << " vs=" << vs << ": " << r.error;
            // Each micro-batch crosses S-1 boundaries forward and back, in every replica.
            EXPECT_EQ(r.messages, 2 * (S - 1) * M * R) << algo;
          }
  }
}

// The delayed-gradient pipeline with every option: accumulation, stashed weights, and stages
// that rebuild their input from what the next stage sends back (one extra message per
// micro-batch and such boundary).
TEST(Schedule, DelayedPipelineValidWithEveryOption) {
  auto sched = makeSchedule("petra");
  for (int S = 1; S <= 8; ++S)
    for (int M = 1; M <= 16; M += 3)
      for (int k : {1, 2, 3})
        for (int pattern = 0; pattern < 3; ++pattern)
          for (bool stash : {false, true}) {
            ScheduleSpec spec{.stages = S, .microbatches = M};
            spec.accumSteps = k;
            spec.stashParams = stash;
            int recon = 0;
            for (int j = 0; j < S; ++j) {
              const bool r = j + 1 < S && (pattern == 1 || (pattern == 2 && j % 2 == 0));
              spec.reconFrom.push_back(r);
              recon += r;
            }
            SimResult res = simulate(*sched, spec);
            ASSERT_TRUE(res.ok) << "S=" << S << " M=" << M << " k=" << k << " pattern " << pattern << ": " << res.error;
            EXPECT_EQ(res.messages, 2 * (S - 1) * M + recon * M);
          }
}

// seed-petra.md 1.2/1.3: micro-batch m runs forward on stage j at tick m + j and backward at
// m + 2(J-1) - j; the head does both in one tick; stage j holds up to 2(J-1-j) + 1 micro-batches;
// with accumulation k every stage steps after the same groups of k micro-batches.
TEST(Schedule, DelayedPipelineFollowsTheTickSchedule) {
  const int J = 4, M = 9, k = 2;
  ScheduleSpec spec{.stages = J, .microbatches = M};
  spec.accumSteps = k;
  auto sched = makeSchedule("petra");
  for (int j = 0; j < J; ++j) {
    const Program p = sched->build(j, spec);
    std::vector<std::pair<char, int>> seen;  // (F/B/U, mb or accumulated count)
    for (const Step& s : p)
      for (const Instr& in : s) {
        if (in.op == Op::kForward) seen.push_back({'F', in.mb});
        if (in.op == Op::kBackward) seen.push_back({'B', in.mb});
        if (in.op == Op::kOptimizerStep) seen.push_back({'U', in.mb});
      }
    // Expected order from the tick rule.
    std::vector<std::pair<char, int>> want;
    int count = 0;
    for (int t = 0; t < M + 2 * (J - 1); ++t) {
      const int mf = t - j, mb = j == J - 1 ? mf : t - 2 * (J - 1) + j;
      if (mf >= 0 && mf < M) want.push_back({'F', mf});
      if (mb >= 0 && mb < M) {
        want.push_back({'B', mb});
        if (++count == k) want.push_back({'U', k}), count = 0;
      }
    }
    if (count) want.push_back({'U', count});
    EXPECT_EQ(seen, want) << "stage " << j;
    EXPECT_EQ(numSlots(p), std::min(M, 2 * (J - 1 - j) + 1)) << "stage " << j;
  }
}

// SpecTrain v1 (seed-spectrain.md 2.2 table): s_f = floor(k/2) + S-k-1 before every forward,
// s_b = floor(k/2) before every backward, nothing stashed; the 1F1B order is pipedream's.
TEST(Schedule, SpecTrainPredictionDistances) {
  auto st = makeSchedule("spectrain");
  const int table[4][4][2] = {{{0, 0}}, {{1, 0}, {0, 0}}, {{2, 0}, {1, 0}, {1, 1}}, {{3, 0}, {2, 0}, {2, 1}, {1, 1}}};
  for (int S = 1; S <= 4; ++S)
    for (int k = 0; k < S; ++k) {
      const Program p = st->build(k, ScheduleSpec{.stages = S, .microbatches = 6});
      int sf = 0, sb = 0;
      for (const Step& s : p)
        for (size_t i = 0; i < s.size(); ++i) {
          EXPECT_NE(s[i].op, Op::kStashWeights);
          if (s[i].op != Op::kPredictWeights) continue;
          ASSERT_LT(i + 1, s.size());
          const Instr& next = s[i + 1];
          EXPECT_EQ(next.version, kVersionPredicted);
          (next.op == Op::kForward ? sf : sb) = s[i].version;
          EXPECT_EQ(s[i].tag, next.op == Op::kForward ? 1 : 0);
        }
      EXPECT_EQ(sf, table[S - 1][k][0]) << "S=" << S << " k=" << k;
      EXPECT_EQ(sb, table[S - 1][k][1]) << "S=" << S << " k=" << k;
    }
  // Capping the distance at 0 leaves plain pipedream without stashing.
  ScheduleSpec capped{.stages = 4, .microbatches = 6};
  capped.maxDistance = 0;
  ScheduleSpec nostash{.stages = 4, .microbatches = 6};
  nostash.stash = false;
  // (Without stashing every version a pipedream backward names is the current one: same program.)
  auto plain = [](Program p) {
    for (Step& s : p)
      for (Instr& in : s) {
        EXPECT_NE(in.op, Op::kStashWeights);
        if (in.op == Op::kForward || in.op == Op::kBackward) in.version = -1;
      }
    return p;
  };
  for (int k = 0; k < 4; ++k)
    EXPECT_TRUE(plain(st->build(k, capped)) == plain(makeSchedule("pipedream")->build(k, nostash))) << "stage " << k;
}

TEST(Schedule, EvalProgramsValid) {
  for (int S = 1; S <= 8; ++S)
    for (int M = 1; M <= 16; M += 5) {
      ScheduleSpec spec{.stages = S, .replicas = 1, .microbatches = M, .phase = Phase::kEval};
      SimResult r = simulate(*makeSchedule("gpipe"), spec);
      ASSERT_TRUE(r.ok) << r.error;
    }
}

TEST(Schedule, FlushedPipelinesMeetTheBubbleBound) {
  for (const char* algo : {"gpipe", "1f1b"})
    for (int S = 2; S <= 8; ++S)
      for (int M : {1, 4, 16}) {
        ScheduleSpec spec{.stages = S, .microbatches = M};
        SimResult r = simulate(*makeSchedule(algo), spec, SimCosts{.forward = 1, .backward = 2});
        ASSERT_TRUE(r.ok);
        const double bound = double(S - 1) / double(M + S - 1);
        for (double f : r.idleFraction) EXPECT_NEAR(f, bound, 1e-9) << algo << " S=" << S << " M=" << M;
      }
  // Vanilla model parallel: one micro-batch in flight, idle (S-1)/S.
  SimResult mp = simulate(*makeSchedule("mp"), ScheduleSpec{.stages = 4, .microbatches = 8});
  for (double f : mp.idleFraction) EXPECT_NEAR(f, 0.75, 1e-9);
}

TEST(Schedule, ActivationSlotsPerSchedule) {
  const ScheduleSpec spec{.stages = 4, .microbatches = 8};
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(numSlots(makeSchedule("gpipe")->build(s, spec)), 8);        // all micro-batches
    EXPECT_EQ(numSlots(makeSchedule("1f1b")->build(s, spec)), 4 - s);     // S - s in flight
    EXPECT_EQ(numSlots(makeSchedule("pipedream")->build(s, spec)), 4 - s);
    EXPECT_EQ(numSlots(makeSchedule("mp")->build(s, spec)), 1);
  }
}

TEST(Schedule, PipeDreamStashesOnlyWhatIsUsedLater) {
  const ScheduleSpec spec{.stages = 3, .microbatches = 6};
  auto count = [](const Program& p) {
    int n = 0;
    for (const Step& s : p)
      for (const Instr& in : s) n += in.op == Op::kStashWeights;
    return n;
  };
  auto pd = makeSchedule("pipedream");
  EXPECT_EQ(count(pd->build(2, spec)), 0);  // last stage: forward and backward are adjacent
  EXPECT_GT(count(pd->build(0, spec)), 0);
  // Every micro-batch gets one optimizer step.
  int steps = 0;
  for (const Step& s : pd->build(1, spec))
    for (const Instr& in : s) steps += in.op == Op::kOptimizerStep;
  EXPECT_EQ(steps, 6);
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

TEST(Topology, RanksMapToReplicaAndStage) {
  Topology t(8, 4);
  EXPECT_EQ(t.replicas(), 2);
  RankCoord c = t.coord(6);
  EXPECT_EQ(c.replica, 1);
  EXPECT_EQ(c.stage, 2);
  EXPECT_EQ(t.rankOf(1, 2), 6);
  EXPECT_THROW(Topology(6, 4), ConfigError);
}

TEST(Topology, ExplicitPartition) {
  auto p = partitionExplicit("2,5", 8, 3, "pipe.partition");
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].end, 2u);
  EXPECT_EQ(p[1].begin, 2u);
  EXPECT_EQ(p[2].end, 8u);
  EXPECT_THROW(partitionExplicit("5,2", 8, 3, "pipe.partition"), ConfigError);
  EXPECT_THROW(partitionExplicit("2", 8, 3, "pipe.partition"), ConfigError);
  EXPECT_THROW(partitionExplicit("0,4", 8, 3, "pipe.partition"), ConfigError);
  EXPECT_THROW(partitionExplicit("2,x", 8, 3, "pipe.partition"), ConfigError);
}

TEST(Topology, BalancedPartitionMinimisesTheBottleneck) {
  // Brute force over all cuts of 7 blocks into 3 stages.
  const std::vector<double> cost{5, 1, 1, 4, 2, 2, 6};
  auto p = partitionBalanced(cost, 3);
  auto stageMax = [&](const std::vector<BlockRange>& parts) {
    double m = 0;
    for (auto& r : parts) {
      double s = 0;
      for (size_t i = r.begin; i < r.end; ++i) s += cost[i];
      m = std::max(m, s);
    }
    return m;
  };
  double best = 1e9;
  for (size_t a = 1; a < 7; ++a)
    for (size_t b = a + 1; b < 7; ++b) best = std::min(best, stageMax({{0, a}, {a, b}, {b, 7}}));
  EXPECT_EQ(stageMax(p), best);
  EXPECT_EQ(p.front().begin, 0u);
  EXPECT_EQ(p.back().end, 7u);
  EXPECT_THROW(partitionBalanced(cost, 8), ConfigError);
}

}  // namespace
}  // namespace sw
