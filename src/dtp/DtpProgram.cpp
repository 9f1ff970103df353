// DTP programs: builder, layer assignment, validator.
#include "dtp/DtpProgram.h"

#include <algorithm>
#include <numeric>
#include <sstream>

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

DtpProgram buildDtpProgram(int rank, int world, const std::vector<int>& owner) {
  DtpProgram p{{Op::kLoad}, {Op::kForward}};
  for (size_t i = 1; i < owner.size(); ++i)
    if (owner[i] == rank) p.push_back({Op::kTrainFeedback, int(i), rank});
  if (world > 1)
    for (size_t i = 1; i < owner.size(); ++i) p.push_back({Op::kSyncFeedback, int(i), owner[i]});
  p.push_back({Op::kComputeTargets});
  p.push_back({Op::kLocalLoss});
  p.push_back({Op::kOptimizerStep});
  return p;
}

std::string validateDtpPrograms(const std::vector<DtpProgram>& programs, const std::vector<int>& owner) {
  const int world = int(programs.size());
  std::vector<int> trained(owner.size(), 0);
  std::vector<DtpInstr> syncs0;
  for (int r = 0; r < world; ++r) {
    const DtpProgram& p = programs[size_t(r)];
    const std::string who = "rank " + std::to_string(r) + ": ";
    bool loaded = false, forward = false, targets = false, losses = false, stepped = false;
    std::vector<DtpInstr> syncs;
    for (const DtpInstr& in : p) {
      switch (in.op) {
        case Op::kLoad:
          loaded = true;
          break;
        case Op::kForward:
          if (!loaded) return who + "Forward before Load";
          forward = true;
          break;
        case Op::kTrainFeedback:
          if (!forward) return who + "TrainFeedback before Forward";
          if (in.layer < 1 || size_t(in.layer) >= owner.size()) return who + "trains invalid block " + std::to_string(in.layer);
          if (owner[size_t(in.layer)] != r) return who + "trains G" + std::to_string(in.layer) + " owned by rank " + std::to_string(owner[size_t(in.layer)]);
          if (!syncs.empty()) return who + "trains G" + std::to_string(in.layer) + " after a sync began";
          ++trained[size_t(in.layer)];
          break;
        case Op::kSyncFeedback:
          if (in.layer < 1 || size_t(in.layer) >= owner.size() || in.owner != owner[size_t(in.layer)])
            return who + "syncs G" + std::to_string(in.layer) + " from the wrong root " + std::to_string(in.owner);
          if (targets) return who + "syncs after ComputeTargets";
          syncs.push_back(in);
          break;
        case Op::kComputeTargets:
          if (!forward) return who + "ComputeTargets before Forward";
          targets = true;
          break;
        case Op::kLocalLoss:
          if (!targets) return who + "LocalLoss before ComputeTargets";
          losses = true;
          break;
        case Op::kOptimizerStep:
          if (!losses) return who + "OptimizerStep before LocalLoss";
          stepped = true;
          break;
        default:
          return who + "instruction " + std::string(opName(in.op)) + " is not part of DTP";
      }
    }
    if (!stepped) return who + "never takes the forward optimizer step";
    if (r == 0) syncs0 = syncs;
    else if (syncs != syncs0) return who + "issues a different SyncFeedback sequence than rank 0 (collectives would not match)";
  }
  for (size_t i = 1; i < owner.size(); ++i) {
    if (trained[i] != 1) return std::string("G") + std::to_string(i) + " is trained " + std::to_string(trained[i]) + " times per step";
    if (world > 1) {
      const bool synced = std::any_of(syncs0.begin(), syncs0.end(), [&](const DtpInstr& s) { return s.layer == int(i); });
      if (!synced) return std::string("G") + std::to_string(i) + " is never broadcast from its owner";
    }
  }
  return "";
}

std::string str(const DtpInstr& in) {
  std::ostringstream os;
  switch (in.op) {
    case Op::kTrainFeedback: os << "TrainFeedback(G" << in.layer << ")"; break;
    case Op::kSyncFeedback: os << "Sync(G" << in.layer << "<-" << in.owner << ")"; break;
    default: os << opName(in.op);
  }
  return os.str();
}

std::string describe(const std::vector<DtpProgram>& programs) {
  std::ostringstream os;
  for (size_t r = 0; r < programs.size(); ++r) {
    os << "rank " << r << ":";
    for (const DtpInstr& in : programs[r]) os << " " << str(in);
    os << "\n";
  }
  return os.str();
}

}  // namespace sw::dtp
