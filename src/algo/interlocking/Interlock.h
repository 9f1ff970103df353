// The update rule of interlocking backpropagation (seed-interlocking.md 1.1), written once and
// used by the stage schedule (one component per rank), the single-process loop and the tests.
// K components c = 0..K-1; component K-1 (the head) holds the classifier and trains on the true
// loss L_{K-1}; every other component c has an auxiliary head and a local loss L_c. With
// communication distance d (n-wise: n = d + 1): d = 0 local, 1 pairwise, 2 3-wise, >= K-1 global.
//   next-only (the reference code): main net c trains on L_{t(c)}, t(c) = min(c + d, K-1) (the
//     head on L_{K-1}); gradients cross exactly d component boundaries;
//   sum / mean (pairwise only, the reference's earlier variants): main net c < K-1 trains on
//     L_c + L_{c+1} / (L_c + L_{c+1}) / 2.
// Aux head c always trains on L_c alone. Component c sends c-1 the gradient w.r.t. its input of
// every loss L_j, j >= c, that some component below c trains on: a subset of the reference's
// L_c .. L_{min(c+d-1, K-1)} (at most d tensors; nothing for local or from c = 0). The reference
// sends that whole list; the entries nobody below uses (into component 0 all but its target; for
// n >= K all but the true loss's, so global sends what backprop sends) and their input-only
// backward passes are dropped here - the same numbers, less work.
#pragma once
#include <string>
#include <vector>

#include "schedule/Schedule.h"

namespace sw {

// The pairwise variants.
enum class PairwiseMode { kNextOnly, kSum, kMean };
PairwiseMode parsePairwiseMode(const std::string& s);  // throws ConfigError
const char* pairwiseModeName(PairwiseMode m);

// One backward pass of component c in its step, in execution order: the gradient of loss `loss`
// w.r.t. c's output goes back through c. `params`: a full backward that accumulates c's
// parameter gradients (scaled by `weight`); otherwise input-only (no parameter gradients).
// `input`: the gradient w.r.t. c's input is needed (it is sent to c-1).
struct VjpItem {
  int loss = 0;
  bool params = false, input = false;
  float weight = 1.f;
  bool operator==(const VjpItem&) const = default;
};

struct InterlockRule {
  int components = 1;  // K
  int distance = 1;    // d
  PairwiseMode mode = PairwiseMode::kNextOnly;

  int head() const { return components - 1; }
  bool hasAux(int c) const { return c < head(); }
  // t(c): the loss that trains main net c under next-only.
  int target(int c) const;
  // Losses whose gradient trains main net c: {t(c)}, or {c, c+1} for sum/mean below the head.
  std::vector<int> trainedOn(int c) const;
  // Losses whose gradient w.r.t. c's output c receives from c+1, in increasing order.
  std::vector<int> received(int c) const;
  // Losses whose gradient w.r.t. c's input c sends to c-1, in increasing order.
  std::vector<int> sent(int c) const;
  // c's backward passes for one mini-batch. The own gradient goes first, so that c-1 can start
  // before c waits for c+1 (what lets pairwise pipeline, seed 3.3); received ones are relayed in
  // increasing loss order as they arrive (the pipelined n-wise of seed 3.3).
  std::vector<VjpItem> plan(int c) const;
  // Checks K >= 1, d >= 0 and that sum/mean come with d = 1; throws ConfigError naming `key`.
  void validate(const std::string& key) const;
};

}  // namespace sw
