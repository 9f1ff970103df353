// Keys: how a config key is declared (name, default, help, setter) and the value parsers the
// setters use. The common keys are in Options.cpp; each algorithm declares its own section's keys
// in its folder (src/algo/<family>/Options.cpp), compiled into the config library.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sw {

struct TrainConfig;
struct FaultSpec;

struct Key {
  std::string name, def, help;
  std::function<void(TrainConfig&, const std::string&)> set;
};

// Throws ConfigError "KEY: expected EXPECTED, got 'V'".
[[noreturn]] void bad(const std::string& key, const std::string& v, const std::string& expected);
int64_t toInt(const std::string& k, const std::string& v, int64_t lo, int64_t hi);
double toDouble(const std::string& k, const std::string& v, double lo, double hi);
bool toBool(const std::string& k, const std::string& v);
std::vector<std::string> splitList(const std::string& v);  // comma list, empty items dropped
std::vector<int64_t> toIntList(const std::string& k, const std::string& v, int64_t lo);
std::vector<float> toFloatList(const std::string& k, const std::string& v);
std::string oneOf(const std::string& k, const std::string& v, const std::vector<std::string>& ok);
FaultSpec parseFault(const std::string& k, const std::string& v);
// Shortest decimal form that parses back to the same double.
std::string fmtNum(double v);
// Sets the resolved (written-out) value of `key`.
void setResolved(TrainConfig& c, const std::string& key, const std::string& v);

// Each algorithm family's keys and checks (src/algo/<family>/Options.cpp).
void addBackpropKeys(std::vector<Key>& k);
void addPipeDreamKeys(std::vector<Key>& k);
void addPetraKeys(std::vector<Key>& k);
void addInterlockingKeys(std::vector<Key>& k);
void addDtpKeys(std::vector<Key>& k);
void addParleKeys(std::vector<Key>& k);
// After every key is set: cross-key checks and resolved defaults; `given` are the keys the user set.
void resolveDtpOptions(TrainConfig& c);
void resolveParleOptions(TrainConfig& c, const std::map<std::string, std::string>& given);

}  // namespace sw
