// The simulation as text: one row per rank, one column per time unit, each instruction's short
// name where it runs, then each rank's idle share (what `stagewise schedule` prints).
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "schedule/Validator.h"

namespace sw {

std::string renderTimeline(const SimResult& r, const ScheduleSpec& spec) {
  std::ostringstream os;
  if (!r.ok) {
    os << "INVALID: " << r.error << "\n";
    return os.str();
  }
  const int cols = int(std::ceil(r.makespan));
  const int ranks = spec.stages * spec.replicas;
  std::vector<std::vector<std::string>> grid(ranks, std::vector<std::string>(cols, "."));
  int width = 1;
  for (const TimelineEvent& e : r.events) {
    const std::string label = shortStr(e.in);
    width = std::max(width, int(label.size()));
    for (int t = int(std::floor(e.start)); t < int(std::ceil(e.end)) && t < cols; ++t)
      grid[e.rank][t] = label;
  }
  for (int k = 0; k < ranks; ++k) {
    os << "rank " << std::setw(2) << k << " (stage " << k % spec.stages;
    if (spec.replicas > 1) os << ", replica " << k / spec.stages;
    os << ") |";
    for (int t = 0; t < cols; ++t) os << std::setw(width) << grid[k][t] << (t + 1 < cols ? " " : "");
    os << "| idle " << std::fixed << std::setprecision(1) << 100.0 * r.idleFraction[k] << "%\n";
  }
  double mean = 0;
  for (double f : r.idleFraction) mean += f;
  os << "makespan " << r.makespan << " time units, mean idle " << std::fixed << std::setprecision(1)
     << 100.0 * mean / std::max(1, ranks) << "%, " << r.messages << " messages\n";
  return os.str();
}

}  // namespace sw
