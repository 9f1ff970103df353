// The 1F1B order of forwards and backwards on one stage, shared by 1f1b and pipedream.
#pragma once
#include <algorithm>
#include <vector>

namespace sw {

struct OrderItem {
  bool forward;
  int mb;
};

// Warm-up: min(S-s-1, M) forwards; steady: F(i + warm-up), B(i) pairs; cool-down: backwards.
inline std::vector<OrderItem> oneFOneBOrder(int stage, int stages, int microbatches) {
  std::vector<OrderItem> out;
  const int warm = std::min(stages - stage - 1, microbatches);
  int nextF = 0, nextB = 0;
  for (; nextF < warm; ++nextF) out.push_back({true, nextF});
  while (nextB < microbatches) {
    if (nextF < microbatches) out.push_back({true, nextF++});
    out.push_back({false, nextB++});
  }
  return out;
}

}  // namespace sw
