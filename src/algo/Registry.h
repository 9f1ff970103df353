// Registry: the one list of training algorithms. The CLI (--help, `stagewise schedule`), config
// validation and the trainer take the algorithm names, their one-line descriptions, their config
// sections and their factories from here; a new algorithm is one folder under src/algo plus one
// line in Registry.cpp.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "algo/Algorithm.h"

namespace sw {

struct AlgoInfo {
  std::string name;      // train.algo
  std::string family;    // its folder, src/algo/<family>
  std::string summary;   // one line for --help and the README's table
  std::string sections;  // the config sections it reads besides the common ones
  std::function<std::unique_ptr<Algorithm>(const TrainConfig&)> make;
};

const std::vector<AlgoInfo>& algorithms();
// Throws ConfigError naming train.algo and the known names when `name` is not registered.
const AlgoInfo& findAlgorithm(const std::string& name);
std::unique_ptr<Algorithm> makeAlgorithm(const TrainConfig& cfg);
// "bp, dp, ..." in registry order.
std::string algorithmNames(const std::string& sep = ", ");
// The --help table: one line per algorithm.
std::string algorithmHelp();

// The program builder of `name` with its default config, as a pure Schedule (stage `s` builds
// replica 0's program): for `stagewise schedule`-style simulations and tests.
std::unique_ptr<Schedule> makeSchedule(const std::string& name);

// Test hook: adds an algorithm for the rest of the process (a plug-in written inside a test).
void registerAlgorithm(AlgoInfo info);

}  // namespace sw
