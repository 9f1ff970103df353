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

}  // namespace sw
