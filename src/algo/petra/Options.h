// The [petra] options of the petra family: the struct TrainConfig holds, and (Options.cpp here) the
// keys that fill it and their checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sw {

// Delayed-gradient pipeline modes (seed-petra.md 1.4): backprop = synchronous + store_context;
// stashing = store_input + store_params; DSP = store_input; PETRA = nothing stored.
struct PetraSection {
  bool synchronous = false;
  bool storeContext = false;
  bool storeInput = false;
  bool storeParams = false;
  int drainEvery = 0;  // mini-batches per round (0 = the whole epoch)
};

}  // namespace sw
