// Cluster files and the communication costs they imply, against hand-computed figures; profile
// files that are not profiles are refused naming the file and the field.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "core/Error.h"
#include "plan/Cluster.h"
#include "plan/Profile.h"

namespace sw {
namespace {

std::string writeTemp(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

Cluster twoNodes() {
  Cluster c;
  c.nodes = 2;
  c.devicesPerNode = 3;
  c.intra = {.latency = 0.25, .bandwidth = 100};
  c.inter = {.latency = 1, .bandwidth = 10};
  return c;
}

TEST(ClusterComm, RingAllReduceAndChainBroadcastByHand) {
  const Cluster c = twoNodes();
  ClusterComm comm(c);
  // Inside node 0: 2 (n-1) (latency + bytes / n / bandwidth) = 4 (0.25 + 300 / 3 / 100) = 5.
  EXPECT_DOUBLE_EQ(comm.allReduce({0, 1, 2}, 300), 5.0);
  // Ranks 0 and 3 sit on different nodes: the ring runs at the inter-node link.
  EXPECT_DOUBLE_EQ(comm.allReduce({0, 3}, 200), 2.0 * (1 + 100.0 / 10));
  EXPECT_DOUBLE_EQ(comm.allReduce({0}, 300), 0.0);
  // Broadcast: a latency per hop plus the bytes once.
  EXPECT_DOUBLE_EQ(comm.broadcast({0, 1, 2}, 0, 100), 2 * 0.25 + 1.0);
  // Point to point: the link between the two ranks' nodes.
  EXPECT_DOUBLE_EQ(comm.message(1, 2, 50), 0.25 + 0.5);
  EXPECT_DOUBLE_EQ(comm.message(2, 3, 50), 1 + 5.0);
}

TEST(ClusterComm, MeasuredTablesAreInterpolatedInLogSize) {
  Cluster c = twoNodes();
  c.measuredP2p = {{100, 1.0}, {10000, 3.0}};
  c.measuredAllReduce = {{100, 2.0}, {10000, 6.0}};
  c.measuredRanks = 3;
  ClusterComm comm(c);
  EXPECT_DOUBLE_EQ(comm.message(0, 1, 1000), 2.0);      // halfway in log10: 2 -> 3 -> 4
  EXPECT_DOUBLE_EQ(comm.message(0, 1, 10), 1.0);        // below the table: its first figure
  EXPECT_DOUBLE_EQ(comm.message(0, 1, 20000), 6.0);     // above: proportional to size
  EXPECT_DOUBLE_EQ(comm.allReduce({0, 1, 2}, 1000), 4.0);
  EXPECT_DOUBLE_EQ(comm.message(0, 4, 50), 1 + 5.0);    // across nodes the given link still counts
}

TEST(ClusterFile, ReadsTheShippedExamples) {
  for (const char* f : {"h100_nvlink.ini", "ib_hdr.ini"}) {
    const Cluster c = readCluster(std::string(SW_SOURCE_DIR) + "/configs/cluster/" + f, nullptr);
    EXPECT_GE(c.devices(), 8) << f;
    EXPECT_GT(c.intra.bandwidth, 1e11) << f;
    EXPECT_FALSE(c.intra.source.empty()) << f;
  }
  const Cluster ib = readCluster(std::string(SW_SOURCE_DIR) + "/configs/cluster/ib_hdr.ini", nullptr);
  EXPECT_EQ(ib.nodes, 4);
  EXPECT_DOUBLE_EQ(ib.inter.bandwidth, 24e9);
  EXPECT_DOUBLE_EQ(ib.inter.latency, 2e-6);
}

void expectRefused(const std::string& text, const std::string& needle) {
  const std::string path = writeTemp("cluster_bad.ini", text);
  try {
    (void)readCluster(path, nullptr);
    ADD_FAILURE() << "accepted: " << text;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(ClusterFile, BadFilesAreRefusedNamingTheKey) {
  expectRefused("[cluster]\nnodes = 2\ndevices_per_node = 0\n", "no devices");
  expectRefused("[cluster]\ndevices_per_node = 4\n[intra]\nlatency_us = 1\nbandwidth_gb_s = -1\n", "intra.bandwidth_gb_s");
  expectRefused("[cluster]\nnodes = 2\ndevices_per_node = 1\n", "inter.latency_us is required");
  expectRefused("[cluster]\ndevices_per_node = 1\nspeed = 2\n", "unknown key 'cluster.speed'");
  expectRefused("[cluster]\ndevices_per_node = 1\nlinks = fast\n", "cluster.links");
  expectRefused("[cluster]\ndevices_per_node = x\n", "cluster.devices_per_node");
}

TEST(ClusterFile, MeasuredLinksNeedAMultiRankProfile) {
  const std::string path = writeTemp("cluster_measured.ini", "[cluster]\ndevices_per_node = 2\nlinks = measured\n");
  Profile p;
  p.origin = "p.json";
  const Cluster c = readCluster(path, &p);
  EXPECT_NE(c.linksMissing.find("mpirun -n 2"), std::string::npos);
  p.comm = {.ranks = 2, .kind = "world", .p2p = {{4, 1e-6}, {1 << 20, 1e-4}}, .allReduce = {{4, 2e-6}},
            .latency = 1e-6, .bandwidth = 1e10};
  const Cluster m = readCluster(path, &p);
  EXPECT_TRUE(m.linksMissing.empty());
  EXPECT_EQ(m.measuredP2p.size(), 2u);
  EXPECT_DOUBLE_EQ(m.intra.bandwidth, 1e10);
}

TEST(ProfileFile, NotAProfileIsRefusedNamingTheFileAndField) {
  auto refused = [](const std::string& text, const std::string& needle) {
    const std::string path = writeTemp("profile_bad.json", text);
    try {
      (void)readProfile(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused("{ not json", "not JSON");
  refused("{\"format\": \"something else\"}", "not a stagewise profile");
  refused("{\"format\": \"stagewise-profile/1\", \"model\": \"mlp\"}", "device");
  try {
    (void)readProfile(::testing::TempDir() + "no_such_profile.json");
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_profile.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace sw
