// Clock: the one steady clock and elapsed-seconds helper every timing in the tree uses.
#pragma once
#include <chrono>

namespace sw {

using Clock = std::chrono::steady_clock;

inline double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace sw
