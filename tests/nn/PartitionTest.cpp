// Stage partitions: explicit boundaries and the balanced cut.
#include <gtest/gtest.h>

#include "comm/Topology.h"
#include "core/Error.h"
#include "algo/Registry.h"
#include "nn/Partition.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

TEST(Partition, Explicit) {
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

TEST(Partition, BalancedMinimisesTheBottleneck) {
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
