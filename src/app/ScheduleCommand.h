// `stagewise schedule`: builds every rank's program for an algorithm, validates it by
// simulation and prints the per-rank timeline with idle fractions. No MPI, no device.
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace sw {

// Returns the exit status (0 valid, 1 the schedule failed validation). Throws ConfigError on
// bad arguments.
int scheduleCommand(const std::vector<std::string>& args, std::ostream& out);

}  // namespace sw
