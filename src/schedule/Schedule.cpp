// Shared schedule pieces and the algorithm registry.
#include "schedule/Schedule.h"

#include <algorithm>

#include "core/Error.h"
#include "schedule/algorithms/Algorithms.h"

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

bool hasSchedule(const std::string& algo) {
  return algo == "bp" || algo == "dp" || algo == "mp" || algo == "gpipe" || algo == "1f1b" ||
         algo == "pipedream" || algo == "spectrain" || algo == "petra" || algo == "interlocking" ||
         algo == "local" || algo == "parle";
}

std::unique_ptr<Schedule> makeSchedule(const std::string& algo) {
  if (algo == "bp" || algo == "dp") return makeDataParallel(algo);
  if (algo == "mp") return makeModelParallel();
  if (algo == "gpipe") return makeGPipe();
  if (algo == "1f1b") return makeOneFOneB();
  if (algo == "pipedream") return makePipeDream();
  if (algo == "spectrain") return makeSpecTrain();
  if (algo == "petra") return makeDelayed();
  if (algo == "interlocking" || algo == "local") return makeInterlocking();
  if (algo == "parle") return makeParle("1f1b", ParleCoupling::kAfterSteps);  // the trainer picks via [parle]
  throw ConfigError("train.algo = " + algo + ": no stage schedule for this algorithm in this build "
                    "(available: bp, dp, mp, gpipe, 1f1b, pipedream, spectrain, petra, interlocking, local, parle)");
}

}  // namespace sw
