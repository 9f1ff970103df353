// Topology: rank <-> (replica, stage).
#include <gtest/gtest.h>

#include "comm/Topology.h"
#include "core/Error.h"
#include "algo/Registry.h"
#include "nn/Partition.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

TEST(Topology, RanksMapToReplicaAndStage) {
  Topology t(8, 4);
  EXPECT_EQ(t.replicas(), 2);
  RankCoord c = t.coord(6);
  EXPECT_EQ(c.replica, 1);
  EXPECT_EQ(c.stage, 2);
  EXPECT_EQ(t.rankOf(1, 2), 6);
  EXPECT_THROW(Topology(6, 4), ConfigError);
}

}  // namespace
}  // namespace sw
