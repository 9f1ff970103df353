#include "core/Strings.h"

#include <cmath>
#include <sstream>

namespace sw {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<std::string> splitTrimmed(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string t; std::getline(is, t, sep);) out.push_back(trim(t));
  return out;
}

std::optional<int64_t> parseInt(const std::string& s) {
  size_t pos = 0;
  long long x = 0;
  try {
    x = std::stoll(s, &pos);
  } catch (...) {
    return std::nullopt;
  }
  if (pos == 0 || pos != s.size()) return std::nullopt;
  return int64_t(x);
}

std::optional<double> parseNumber(const std::string& s) {
  size_t pos = 0;
  double x = 0;
  try {
    x = std::stod(s, &pos);
  } catch (...) {
    return std::nullopt;
  }
  if (pos == 0 || pos != s.size() || !std::isfinite(x)) return std::nullopt;
  return x;
}

}  // namespace sw
