// PipeDream's and SpecTrain's programs: SpecTrain's prediction distances, and PipeDream stashing
// only the weight versions a later backward uses.
#include <gtest/gtest.h>

#include "comm/Topology.h"
#include "core/Error.h"
#include "algo/pipedream/PipeDreamAlgorithm.h"
#include "algo/Registry.h"
#include "nn/Partition.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

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
  capped.params.set<PipeDreamParams>().maxDistance = 0;
  ScheduleSpec nostash{.stages = 4, .microbatches = 6};
  nostash.params.set<PipeDreamParams>().stash = false;
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

}  // namespace
}  // namespace sw
