// Topology and stage partitioning.
#include "comm/Topology.h"

#include <algorithm>
#include <limits>
#include <sstream>

#include "core/Error.h"

namespace sw {

Topology::Topology(int world, int stages) : world_(world), stages_(stages) {
  if (stages < 1) throw ConfigError("pipe.stages = " + std::to_string(stages) + ": must be >= 1");
  if (world % stages != 0)
    throw ConfigError("rank count " + std::to_string(world) + " is not a multiple of pipe.stages = " +
                      std::to_string(stages) + " (world = replicas x stages)");
}

RankCoord Topology::coord(int rank) const {
  RankCoord c;
  c.rank = rank;
  c.world = world_;
  c.stages = stages_;
  c.replicas = replicas();
  c.stage = rank % stages_;
  c.replica = rank / stages_;
  return c;
}

std::string Topology::str() const {
  std::ostringstream os;
  os << world_ << " ranks = " << replicas() << " replica" << (replicas() > 1 ? "s" : "") << " x "
     << stages_ << " stage" << (stages_ > 1 ? "s" : "");
  return os.str();
}

std::vector<StageRange> partitionExplicit(const std::string& list, size_t numBlocks, int stages,
                                          const std::string& key) {
  std::vector<size_t> cuts{0};
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t pos = 0;
    long v = -1;
    try {
      v = std::stol(item, &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos == 0 || v <= 0 || size_t(v) >= numBlocks || size_t(v) <= cuts.back())
      throw ConfigError(key + " = " + list + ": '" + item + "' must be a block index strictly "
                        "increasing within 1.." + std::to_string(numBlocks - 1) +
                        " (the first block of each stage after stage 0)");
    cuts.push_back(size_t(v));
  }
  if (int(cuts.size()) != stages)
    throw ConfigError(key + " = " + list + ": lists " + std::to_string(cuts.size() - 1) +
                      " stage boundaries, pipe.stages = " + std::to_string(stages) + " needs " +
                      std::to_string(stages - 1));
  cuts.push_back(numBlocks);
  std::vector<StageRange> out;
  for (int s = 0; s < stages; ++s) out.push_back({cuts[s], cuts[s + 1]});
  return out;
}

std::vector<StageRange> partitionBalanced(const std::vector<double>& cost, int stages) {
  const size_t n = cost.size();
  if (stages < 1 || size_t(stages) > n)
    throw ConfigError("pipe.stages = " + std::to_string(stages) + " but the model has " +
                      std::to_string(n) + " blocks (each stage needs at least one)");
  std::vector<double> prefix(n + 1, 0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + cost[i];
  const double inf = std::numeric_limits<double>::infinity();
  // best[s][i]: minimal bottleneck of splitting blocks [0, i) into s stages; cut[s][i] = start of
  // the last stage. Ties prefer the later cut, which keeps early stages (that also hold stashed
  // activations longest in 1F1B) light.
  std::vector<std::vector<double>> best(stages + 1, std::vector<double>(n + 1, inf));
  std::vector<std::vector<size_t>> cut(stages + 1, std::vector<size_t>(n + 1, 0));
  best[0][0] = 0;
  for (int s = 1; s <= stages; ++s)
    for (size_t i = size_t(s); i <= n; ++i)
      for (size_t j = size_t(s - 1); j < i; ++j) {
        const double v = std::max(best[s - 1][j], prefix[i] - prefix[j]);
        if (v <= best[s][i]) {
          best[s][i] = v;
          cut[s][i] = j;
        }
      }
  std::vector<StageRange> out(stages);
  size_t end = n;
  for (int s = stages; s >= 1; --s) {
    out[s - 1] = {cut[s][end], end};
    end = cut[s][end];
  }
  return out;
}

}  // namespace sw
