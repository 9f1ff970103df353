// Layer assignment of layer-parallel DTP.
#include "algo/dtp/LayerAssign.h"

#include <algorithm>
#include <numeric>

#include "core/Error.h"

namespace sw::dtp {

Assign parseAssign(const std::string& s) {
  if (s == "balanced") return Assign::kBalanced;
  if (s == "round_robin") return Assign::kRoundRobin;
  throw ConfigError("dtp.assign: expected balanced or round_robin, got '" + s + "'");
}

std::vector<int> assignLayers(const std::vector<double>& cost, int world, Assign mode) {
  SW_CHECK(world >= 1 && !cost.empty(), "assignLayers needs ranks and blocks");
  const int L = int(cost.size()) - 1;
  std::vector<int> owner(cost.size(), -1);
  if (mode == Assign::kRoundRobin || world == 1) {
    for (int i = 1; i <= L; ++i) owner[size_t(i)] = i % world;
    return owner;
  }
  auto loadOf = [&](const std::vector<int>& o) {
    std::vector<double> load(size_t(world), 0.0);
    for (int i = 1; i <= L; ++i) load[size_t(o[size_t(i)])] += cost[size_t(i)];
    return load;
  };
  // Score: the largest load, then the spread (sum of squares), then the first found: deterministic.
  auto score = [&](const std::vector<int>& o) {
    const auto load = loadOf(o);
    double sq = 0;
    for (double l : load) sq += l * l;
    return std::make_pair(*std::max_element(load.begin(), load.end()), sq);
  };
  double combos = 1;
  for (int i = 0; i < L; ++i) combos *= world;
  if (combos <= 1 << 20) {
    std::vector<int> cur(cost.size(), 0), best;
    cur[0] = -1;
    std::pair<double, double> bestScore{1e300, 1e300};
    for (;;) {
      const auto s = score(cur);
      if (s < bestScore) {
        bestScore = s;
        best = cur;
      }
      int i = 1;
      while (i <= L && ++cur[size_t(i)] == world) cur[size_t(i++)] = 0;
      if (i > L) break;
    }
    return best;
  }
  // Longest processing time first onto the least loaded rank.
  std::vector<int> order(static_cast<size_t>(L));
  std::iota(order.begin(), order.end(), 1);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return cost[size_t(a)] > cost[size_t(b)]; });
  std::vector<double> load(size_t(world), 0.0);
  for (int i : order) {
    const size_t r = size_t(std::min_element(load.begin(), load.end()) - load.begin());
    owner[size_t(i)] = int(r);
    load[r] += cost[size_t(i)];
  }
  return owner;
}

}  // namespace sw::dtp
