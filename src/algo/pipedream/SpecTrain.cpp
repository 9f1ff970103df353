// SpecTrain version 1 (seed-spectrain.md 2.2): PipeDream's asynchronous 1F1B without weight
// stashing, where stage k runs each forward on weights predicted s_f = floor(k/2) + S-k-1
// optimizer steps ahead along the smoothed gradient (W - lr s_f (m B + D)) and each backward on
// weights predicted s_b = floor(k/2) steps ahead (W - lr s_b m B). s_f - s_b equals the stage's
// staleness, so forward and backward of a micro-batch aim at the same version. Version 2 is
// pipedream with stashing and an (S-k)-fold step, built by the trainer from PipeDream.
#include <algorithm>

#include "algo/pipedream/PipeDreamAlgorithm.h"
#include "algo/backprop/OneFOneBOrder.h"

namespace sw {
namespace {

class SpecTrainV1 : public Schedule {
 public:
  std::string_view name() const override { return "spectrain"; }
  bool flushed() const override { return false; }
  Program build(int stage, const ScheduleSpec& spec) const override {
    const int S = spec.stages, M = spec.microbatches;
    const int slots = std::min(S - stage, M);
    const int maxDistance = spec.params.get<PipeDreamParams>().maxDistance;
    auto cap = [&](int s) { return maxDistance >= 0 ? std::min(s, maxDistance) : s; };
    const int sf = cap(stage / 2 + S - stage - 1), sb = cap(stage / 2);
    Program p;
    for (const OrderItem& it : oneFOneBOrder(stage, S, M)) {
      const int slot = it.mb % slots;
      if (it.forward) {
        Step s = detail::forwardStep(stage, S, it.mb, slot, sf > 0 ? kVersionPredicted : -1);
        if (sf > 0) {
          auto at = std::find_if(s.begin(), s.end(), [](const Instr& in) { return in.op == Op::kForward; });
          s.insert(at, {.op = Op::kPredictWeights, .mb = it.mb, .version = sf, .tag = 1});
        }
        p.push_back(std::move(s));
      } else {
        Step s = detail::backwardStep(stage, S, it.mb, slot, sb > 0 ? kVersionPredicted : -1);
        if (sb > 0) {
          auto at = std::find_if(s.begin(), s.end(), [](const Instr& in) { return in.op == Op::kBackward; });
          s.insert(at, {.op = Op::kPredictWeights, .mb = it.mb, .version = sb, .tag = 0});
        }
        Step u = detail::updateStep(spec);
        s.insert(s.end(), u.begin(), u.end());
        p.push_back(std::move(s));
      }
    }
    return p;
  }
};

}  // namespace

std::unique_ptr<Schedule> makeSpecTrainSchedule() { return std::make_unique<SpecTrainV1>(); }

}  // namespace sw
