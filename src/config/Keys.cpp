// The value parsers of config keys: every error names the key, the value and what was expected.
#include "config/Keys.h"

#include "config/TrainConfig.h"

#include <cmath>
#include <sstream>

#include "core/Error.h"
#include "core/Strings.h"

namespace sw {

void bad(const std::string& key, const std::string& v, const std::string& expected) {
  throw ConfigError(key + ": expected " + expected + ", got '" + v + "'");
}

int64_t toInt(const std::string& k, const std::string& v, int64_t lo, int64_t hi) {
  const std::optional<int64_t> p = parseInt(v);
  if (!p) bad(k, v, "an integer");
  const int64_t x = *p;
  if (x < lo || x > hi)
    bad(k, v, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

double toDouble(const std::string& k, const std::string& v, double lo, double hi) {
  const std::optional<double> p = parseNumber(v);
  if (!p) bad(k, v, "a finite number");
  const double x = *p;
  if (x < lo || x > hi) {
    std::ostringstream os;
    os << "a number in [" << lo << ", " << hi << "]";
    bad(k, v, os.str());
  }
  return x;
}

bool toBool(const std::string& k, const std::string& v) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  bad(k, v, "true or false");
}

std::vector<std::string> splitList(const std::string& v) {
  std::vector<std::string> out;
  for (std::string& item : splitTrimmed(v, ','))
    if (!item.empty()) out.push_back(std::move(item));
  return out;
}

std::vector<int64_t> toIntList(const std::string& k, const std::string& v, int64_t lo) {
  std::vector<int64_t> out;
  for (const auto& s : splitList(v)) out.push_back(toInt(k, s, lo, INT64_MAX));
  return out;
}

std::vector<float> toFloatList(const std::string& k, const std::string& v) {
  std::vector<float> out;
  for (const auto& s : splitList(v)) out.push_back(static_cast<float>(toDouble(k, s, -1e30, 1e30)));
  return out;
}

std::string oneOf(const std::string& k, const std::string& v, const std::vector<std::string>& ok) {
  for (const auto& o : ok)
    if (o == v) return v;
  std::string all;
  for (const auto& o : ok) all += (all.empty() ? "" : ", ") + o;
  bad(k, v, "one of: " + all);
}

FaultSpec parseFault(const std::string& k, const std::string& v) {
  FaultSpec f;
  if (v.empty()) return f;
  const size_t at = v.find('@'), colon = v.find(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at)
    bad(k, v, "KIND@RANK:STEP, e.g. throw@1:3");
  f.kind = oneOf(k, v.substr(0, at), {"throw", "hang", "kill"});
  f.rank = int(toInt(k, v.substr(at + 1, colon - at - 1), 0, 1 << 20));
  f.step = toInt(k, v.substr(colon + 1), 0, INT64_MAX);
  return f;
}

// Shortest decimal form that parses back to the same double (resolved values are re-parsed on
// the other ranks and on resume).
std::string fmtNum(double v) {
  for (int prec = 6; prec < 18; ++prec) {
    std::ostringstream os;
    os.precision(prec);
    os << v;
    if (std::stod(os.str()) == v) return os.str();
  }
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

void setResolved(TrainConfig& c, const std::string& key, const std::string& v) {
  for (auto& [k, val] : c.resolved)
    if (k == key) val = v;
}

}  // namespace sw
