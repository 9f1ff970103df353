// Interlocking backprop's update rule (see Interlock.h).
#include "algo/interlocking/Interlock.h"

#include <algorithm>
#include <set>

#include "core/Error.h"

namespace sw {

PairwiseMode parsePairwiseMode(const std::string& s) {
  if (s == "next_only") return PairwiseMode::kNextOnly;
  if (s == "sum") return PairwiseMode::kSum;
  if (s == "mean") return PairwiseMode::kMean;
  throw ConfigError("interlocking.pairwise_mode: expected next_only, sum or mean, got '" + s + "'");
}

const char* pairwiseModeName(PairwiseMode m) {
  switch (m) {
    case PairwiseMode::kNextOnly: return "next_only";
    case PairwiseMode::kSum: return "sum";
    case PairwiseMode::kMean: return "mean";
  }
  return "?";
}

int InterlockRule::target(int c) const { return c >= head() ? head() : std::min(c + distance, head()); }

std::vector<int> InterlockRule::received(int c) const { return c + 1 < components ? sent(c + 1) : std::vector<int>{}; }


std::vector<int> InterlockRule::trainedOn(int c) const {
  if (mode != PairwiseMode::kNextOnly && hasAux(c)) return {c, c + 1};
  return {target(c)};
}

std::vector<int> InterlockRule::sent(int c) const {
  // The gradient of L_j crosses from c to c-1 when a component below c trains on L_j, j >= c.
  std::set<int> s;
  for (int k = 0; k < c; ++k)
    for (int j : trainedOn(k))
      if (j >= c) s.insert(j);
  return {s.begin(), s.end()};
}

std::vector<VjpItem> InterlockRule::plan(int c) const {
  const std::vector<int> out = sent(c);
  auto isSent = [&](int j) { return std::find(out.begin(), out.end(), j) != out.end(); };
  std::vector<VjpItem> p;
  if (mode != PairwiseMode::kNextOnly && hasAux(c)) {
    // L_c and L_{c+1} both train c; the message to c-1 is the unweighted dL_c/dx.
    const float w = mode == PairwiseMode::kMean ? 0.5f : 1.f;
    if (isSent(c)) p.push_back({.loss = c, .params = false, .input = true});
    p.push_back({.loss = c, .params = true, .input = false, .weight = w});
    p.push_back({.loss = c + 1, .params = true, .input = false, .weight = w});
    return p;
  }
  const int t = target(c);
  for (int j = c; j <= t; ++j) {
    if (j == t) p.push_back({.loss = j, .params = true, .input = isSent(j)});
    else if (isSent(j)) p.push_back({.loss = j, .params = false, .input = true});
  }
  return p;
}

void InterlockRule::validate(const std::string& key) const {
  if (components < 1) throw ConfigError(key + ": needs at least one component");
  if (distance < 0) throw ConfigError(key + ": communication distance must be >= 0");
  if (mode != PairwiseMode::kNextOnly && distance != 1)
    throw ConfigError("interlocking.pairwise_mode = " + std::string(pairwiseModeName(mode)) +
                      " is a pairwise variant: it needs interlocking.n = 2 (got n = " + std::to_string(distance + 1) + ")");
}

}  // namespace sw
