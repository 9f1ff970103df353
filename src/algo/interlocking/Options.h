// The [interlocking] options of the interlocking family: the struct TrainConfig holds, and (Options.cpp here) the
// keys that fill it and their checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sw {

// Interlocking backprop (seed-interlocking.md): n-wise (n = communication distance + 1; 1 =
// local, 2 = pairwise, >= components = global), the pairwise variant, the auxiliary heads and
// the component split ("5,4,4,rest": block counts, the stem and the output head one block each).
// aux: one architecture for all aux heads, or a comma list with one per component but the last.
struct InterlockingSection {
  int n = 2;
  std::string pairwiseMode = "next_only";
  std::string aux = "auto";  // nn/AuxHead.h: the reference head on image features, fc on flat ones
  std::string blocksPerComponent;
  int drainEvery = 64;  // mini-batches between pipeline drains (0 = once per epoch)
};

}  // namespace sw
