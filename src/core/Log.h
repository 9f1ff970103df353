// Minimal logging: one line per message to stderr, prefixed with the rank when one is set.
#pragma once
#include <iostream>
#include <sstream>
#include <string>

namespace sw {

struct LogContext {
  int rank = -1, size = 1;
  bool quiet = false;
  static LogContext& get() {
    static LogContext c;
    return c;
  }
};

inline void logLine(const std::string& level, const std::string& msg) {
  auto& c = LogContext::get();
  if (c.quiet && level != "error") return;
  std::ostringstream os;
  if (c.rank >= 0 && c.size > 1) os << "[rank " << c.rank << "/" << c.size << "] ";
  if (level != "info") os << level << ": ";
  os << msg << "\n";
  std::cerr << os.str() << std::flush;
}

}  // namespace sw

#define SW_LOG(level, expr)                 \
  do {                                      \
    std::ostringstream sw_log_os_;          \
    sw_log_os_ << expr;                     \
    ::sw::logLine(level, sw_log_os_.str()); \
  } while (0)
#define SW_INFO(expr) SW_LOG("info", expr)
#define SW_WARN(expr) SW_LOG("warning", expr)
