// The [pipedream] [spectrain] options of the pipedream family: the struct TrainConfig holds, and (Options.cpp here) the
// keys that fill it and their checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sw {

struct PipeDreamSection {
  bool verticalSync = false;
  int drainEvery = 64;         // mini-batches per round (0 = the whole epoch)
  bool stash = true;           // weight stashing (false: a backward reads the current weights)
};

struct SpecTrainSection {
  int version = 1;
  int maxDistance = -1;
};

}  // namespace sw
