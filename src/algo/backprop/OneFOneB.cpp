// Synchronous 1F1B with a flush (PipeDream-Flush; Narayanan et al., ICML 2021, Fig. 4): stage s
// runs min(S-s-1, M) warm-up forwards, then alternates one forward and one backward, then drains
// the remaining backwards; ReduceGrads + one optimizer step at the flush. Same bubble as GPipe,
// (S-1)/(M+S-1), but stage s holds at most S-s activation slots instead of M.
#include <algorithm>

#include "algo/backprop/Backprop.h"
#include "algo/backprop/OneFOneBOrder.h"

namespace sw {
namespace {

class OneFOneB : public Schedule {
 public:
  std::string_view name() const override { return "1f1b"; }
  Program build(int stage, const ScheduleSpec& spec) const override {
    Program p;
    const int slots = std::min(spec.stages - stage, spec.microbatches);
    for (const OrderItem& it : oneFOneBOrder(stage, spec.stages, spec.microbatches)) {
      const int slot = it.mb % slots;
      p.push_back(it.forward ? detail::forwardStep(stage, spec.stages, it.mb, slot)
                             : detail::backwardStep(stage, spec.stages, it.mb, slot));
    }
    p.push_back(detail::updateStep(spec));
    return p;
  }
};

}  // namespace

std::unique_ptr<Schedule> makeOneFOneBSchedule() { return std::make_unique<OneFOneB>(); }

}  // namespace sw
