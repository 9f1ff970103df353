// `stagewise checkpoint verify|inspect DIR`: check every committed checkpoint of a run against
// its manifest (for scripts: exit 0 when all verify, 2 naming the first damaged file otherwise),
// or print what a checkpoint holds.
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace sw {

int checkpointCommand(const std::vector<std::string>& args, std::ostream& out);

}  // namespace sw
