// Cluster: the machine a plan is for - nodes, devices per node, the link inside a node and the
// one between nodes (latency + bytes / bandwidth), and how fast a device computes relative to
// the one the profile was measured on. Read from a small INI file (configs/cluster/*.ini), or
// taken from a profile's own measurement of this machine ([cluster] links = measured).
// ClusterComm prices messages and collectives on it for the simulator (schedule/Validator.h):
// rank r sits on node r / devices_per_node; a point-to-point message costs the link between
// the two ranks; an allreduce is a ring (2 (n-1) steps of bytes / n over the slowest link in
// the ring); a broadcast a pipelined chain (latency per hop + bytes / bandwidth).
#pragma once
#include <string>
#include <vector>

#include "plan/Profile.h"
#include "schedule/Validator.h"

namespace sw {

struct Link {
  double latency = 0;    // seconds
  double bandwidth = 0;  // bytes per second, one direction
  std::string source;    // where the figures come from
  double time(double bytes) const { return latency + bytes / bandwidth; }
};

struct Cluster {
  std::string origin, name;
  int nodes = 1, devicesPerNode = 1;
  Link intra, inter;
  double computeScale = 1.0;  // device compute time = profile time x this
  // Measured allreduce times by size on one node (links = measured): used instead of the ring
  // formula for collectives inside a node, interpolated in log-size.
  std::vector<CommPoint> measuredAllReduce, measuredP2p;
  int measuredRanks = 0;
  std::string linksMissing;  // why there are no links (plans for one rank only)
  int devices() const { return nodes * devicesPerNode; }
  int nodeOf(int rank) const { return rank / devicesPerNode; }
};

// Reads a cluster file; `measured` supplies the links when the file says links = measured.
// Throws InputError naming the file and key (no devices, a non-positive bandwidth, ...).
Cluster readCluster(const std::string& path, const Profile* measured);

class ClusterComm final : public CommModel {
 public:
  explicit ClusterComm(const Cluster& c) : c_(c) {}
  double message(int src, int dst, double bytes) const override;
  double allReduce(const std::vector<int>& ranks, double bytes) const override;
  double broadcast(const std::vector<int>& ranks, int root, double bytes) const override;
  const Link& link(int a, int b) const { return c_.nodeOf(a) == c_.nodeOf(b) ? c_.intra : c_.inter; }

 private:
  const Cluster& c_;
};

}  // namespace sw
