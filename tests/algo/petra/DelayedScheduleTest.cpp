// The delayed-gradient pipeline's programs (seed-petra.md 1.2-1.4): valid with every option, and
// the tick schedule they follow.
#include <gtest/gtest.h>

#include "comm/Topology.h"
#include "core/Error.h"
#include "algo/petra/PetraAlgorithm.h"
#include "algo/Registry.h"
#include "nn/Partition.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

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
            DelayedParams& dp = spec.params.set<DelayedParams>();
            dp.accumSteps = k;
            dp.stashParams = stash;
            int recon = 0;
            for (int j = 0; j < S; ++j) {
              const bool r = j + 1 < S && (pattern == 1 || (pattern == 2 && j % 2 == 0));
              dp.reconFrom.push_back(r);
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
  spec.params.set<DelayedParams>().accumSteps = k;
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

}  // namespace
}  // namespace sw
