// Shared schedule pieces: the forward/backward/update steps and the evaluation program.
#include "schedule/Schedule.h"

#include <algorithm>

#include "core/Error.h"

namespace sw {
namespace detail {

Step forwardStep(int stage, int stages, int mb, int slot, int version) {
  Step s;
  const bool first = stage == 0, last = stage == stages - 1;
  if (!first) s.push_back({.op = Op::kRecvAct, .mb = mb, .slot = slot, .peer = stage - 1, .tag = kTagAct});
  if (first || last) s.push_back({.op = Op::kLoad, .mb = mb, .slot = slot});
  s.push_back({.op = Op::kForward, .mb = mb, .slot = slot, .version = version});
  if (!last) s.push_back({.op = Op::kSendAct, .mb = mb, .slot = slot, .peer = stage + 1, .tag = kTagAct});
  return s;
}

Step backwardStep(int stage, int stages, int mb, int slot, int version) {
  Step s;
  const bool first = stage == 0, last = stage == stages - 1;
  if (!last) s.push_back({.op = Op::kRecvGrad, .mb = mb, .slot = slot, .peer = stage + 1, .tag = kTagGrad});
  s.push_back({.op = Op::kBackward, .mb = mb, .slot = slot, .version = version});
  if (!first) s.push_back({.op = Op::kSendGrad, .mb = mb, .slot = slot, .peer = stage - 1, .tag = kTagGrad});
  return s;
}

Step updateStep(const ScheduleSpec& spec) {
  Step s;
  if (spec.replicas > 1) s.push_back({.op = Op::kReduceGrads});
  s.push_back({.op = Op::kOptimizerStep});
  return s;
}

}  // namespace detail

Program buildEvalProgram(int stage, const ScheduleSpec& spec) {
  Program p;
  for (int mb = 0; mb < spec.microbatches; ++mb) p.push_back(detail::forwardStep(stage, spec.stages, mb, 0));
  return p;
}

int numSlots(const Program& p) {
  int n = 0;
  for (const Step& s : p)
    for (const Instr& in : s) n = std::max(n, in.slot + 1);
  return n;
}

}  // namespace sw
