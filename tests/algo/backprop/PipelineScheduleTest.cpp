// The synchronous and asynchronous pipelines as data, checked without MPI or a device: every
// pipeline algorithm over stages 1-8 x micro-batches 1-16 (and replicas) passes the Validator;
// flushed pipelines reach exactly the (S-1)/(M+S-1) idle bound; activation memory (slots) is
// what each schedule promises.
#include <gtest/gtest.h>

#include "comm/Topology.h"
#include "core/Error.h"
#include "algo/pipedream/PipeDreamAlgorithm.h"
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
            ScheduleSpec spec{.stages = S, .replicas = R, .microbatches = M};
            if (vs) spec.params.set<PipeDreamParams>().verticalSync = true;
            SimResult r = simulate(*sched, spec);
            ASSERT_TRUE(r.ok) << algo << " S=" << S << " M=" << M << " R=" << R << " vs=" << vs << ": " << r.error;
            // Each micro-batch crosses S-1 boundaries forward and back, in every replica.
            EXPECT_EQ(r.messages, 2 * (S - 1) * M * R) << algo;
          }
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

}  // namespace
}  // namespace sw
