// The [dp] options of the backprop family: the struct TrainConfig holds, and (Options.cpp here) the
// keys that fill it and their checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sw {

struct DpSection {
  double bucketMb = 25;
};

}  // namespace sw
