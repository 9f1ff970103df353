// Strings: the small text helpers config parsing, the CLI and the plug-ins share (one copy each).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sw {

// `s` without leading and trailing blanks (space, tab, CR, LF).
std::string trim(const std::string& s);
// Items of `s` between `sep`, each trimmed; empty items are kept ("a,,b" -> a, "", b).
std::vector<std::string> splitTrimmed(const std::string& s, char sep);
// The whole of `s` as a base-10 integer / finite number, or nothing.
std::optional<int64_t> parseInt(const std::string& s);
std::optional<double> parseNumber(const std::string& s);

}  // namespace sw
