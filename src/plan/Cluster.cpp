// Cluster files and the communication costs they imply.
#include "plan/Cluster.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include <boost/program_options.hpp>

#include "core/Error.h"
#include "core/Strings.h"

namespace sw {
namespace po = boost::program_options;

namespace {

double number(const std::string& path, const po::variables_map& vm, const std::string& key, double lo, double def,
              bool required = false) {
  if (!vm.count(key)) {
    if (required) throw InputError(path + ": " + key + " is required");
    return def;
  }
  const std::string v = vm[key].as<std::string>();
  const std::optional<double> x = parseNumber(v);
  if (!x || !(*x >= lo) || !std::isfinite(*x))
    throw InputError(path + ": " + key + ": expected a number >= " + std::to_string(int(lo)) + ", got '" + v + "'");
  return *x;
}

Link readLink(const std::string& path, const po::variables_map& vm, const std::string& sec, bool required) {
  Link l;
  l.latency = number(path, vm, sec + ".latency_us", 0, 0, required) * 1e-6;
  l.bandwidth = number(path, vm, sec + ".bandwidth_gb_s", 0, 0, required) * 1e9;
  if (required && l.bandwidth <= 0) throw InputError(path + ": " + sec + ".bandwidth_gb_s must be > 0");
  if (vm.count(sec + ".source")) l.source = vm[sec + ".source"].as<std::string>();
  return l;
}

}  // namespace

Cluster readCluster(const std::string& path, const Profile* measured) {
  po::options_description d;
  for (const char* k : {"cluster.name", "cluster.nodes", "cluster.devices_per_node", "cluster.compute_scale",
                        "cluster.links", "intra.latency_us", "intra.bandwidth_gb_s", "intra.source",
                        "inter.latency_us", "inter.bandwidth_gb_s", "inter.source"})
    d.add_options()(k, po::value<std::string>());
  std::ifstream f(path);
  if (!f) throw InputError(path + ": cannot open the cluster file");
  po::variables_map vm;
  try {
    po::store(po::parse_config_file(f, d, false), vm);
  } catch (const po::unknown_option& e) {
    throw InputError(path + ": unknown key '" + e.get_option_name() +
                     "' (known: [cluster] name nodes devices_per_node compute_scale links, [intra]/[inter] "
                     "latency_us bandwidth_gb_s source)");
  } catch (const po::error& e) {
    throw InputError(path + ": " + e.what());
  }
  Cluster c;
  c.origin = path;
  c.name = vm.count("cluster.name") ? vm["cluster.name"].as<std::string>() : path;
  c.nodes = int(number(path, vm, "cluster.nodes", 0, 1));
  c.devicesPerNode = int(number(path, vm, "cluster.devices_per_node", 0, 1, true));
  if (c.devices() < 1)
    throw InputError(path + ": the cluster has no devices (cluster.nodes x cluster.devices_per_node = " +
                     std::to_string(c.devices()) + ")");
  c.computeScale = number(path, vm, "cluster.compute_scale", 0, 1);
  if (c.computeScale <= 0) throw InputError(path + ": cluster.compute_scale must be > 0");
  const std::string links = vm.count("cluster.links") ? vm["cluster.links"].as<std::string>() : "given";
  if (links == "measured") {
    if (!measured || measured->comm.ranks < 2) {
      c.linksMissing = path + ": cluster.links = measured needs a profile measured on >= 2 ranks "
                       "(mpirun -n 2 stagewise profile ...) to plan for more than one rank";
      return c;
    }
    c.intra = {measured->comm.latency, measured->comm.bandwidth,
               "measured by stagewise profile (" + measured->origin + ")"};
    c.measuredAllReduce = measured->comm.allReduce;
    c.measuredP2p = measured->comm.p2p;
    c.measuredRanks = measured->comm.ranks;
    if (c.nodes > 1) c.inter = readLink(path, vm, "inter", true);
  } else if (links == "given") {
    c.intra = readLink(path, vm, "intra", c.devicesPerNode > 1);
    c.inter = readLink(path, vm, "inter", c.nodes > 1);
  } else {
    throw InputError(path + ": cluster.links: expected 'given' or 'measured', got '" + links + "'");
  }
  return c;
}

namespace {
// A measured time by size, interpolated in log(bytes); beyond the table, proportional to size.
double interpolate(const std::vector<CommPoint>& t, double bytes) {
  if (bytes <= t.front().bytes) return t.front().seconds;
  for (size_t i = 1; i < t.size(); ++i)
    if (bytes <= t[i].bytes) {
      const double a = std::log(t[i - 1].bytes), b = std::log(t[i].bytes), x = std::log(bytes);
      return t[i - 1].seconds + (t[i].seconds - t[i - 1].seconds) * (x - a) / (b - a);
    }
  return t.back().seconds * bytes / t.back().bytes;
}
}  // namespace

double ClusterComm::message(int src, int dst, double bytes) const {
  if (c_.nodeOf(src) == c_.nodeOf(dst) && !c_.measuredP2p.empty()) return interpolate(c_.measuredP2p, bytes);
  return link(src, dst).time(bytes);
}

double ClusterComm::allReduce(const std::vector<int>& ranks, double bytes) const {
  const size_t n = ranks.size();
  if (n < 2 || bytes <= 0) return 0;
  bool oneNode = true;
  for (int r : ranks) oneNode &= c_.nodeOf(r) == c_.nodeOf(ranks[0]);
  if (oneNode && !c_.measuredAllReduce.empty() && int(n) == c_.measuredRanks) {
    return interpolate(c_.measuredAllReduce, bytes);
  }
  // Ring: 2 (n-1) steps, each moving bytes / n over the ring's slowest link.
  const Link& l = oneNode ? c_.intra : c_.inter;
  return 2.0 * double(n - 1) * (l.latency + bytes / double(n) / l.bandwidth);
}

double ClusterComm::broadcast(const std::vector<int>& ranks, int root, double bytes) const {
  if (ranks.size() < 2) return 0;
  bool oneNode = true;
  for (int r : ranks) oneNode &= c_.nodeOf(r) == c_.nodeOf(root);
  const Link& l = oneNode ? c_.intra : c_.inter;
  return double(ranks.size() - 1) * l.latency + bytes / l.bandwidth;
}

}  // namespace sw
