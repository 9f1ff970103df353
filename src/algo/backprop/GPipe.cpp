// GPipe (Huang et al., NeurIPS 2019): all micro-batches forward, then all backward (last in,
// first out, so the last stage starts backward on the activations it just made), then a flush:
// ReduceGrads + one optimizer step. Bubble (S-1)/(M+S-1); every stage holds M activation slots.
#include "algo/backprop/Backprop.h"

namespace sw {
namespace {

class GPipe : public Schedule {
 public:
  std::string_view name() const override { return "gpipe"; }
  Program build(int stage, const ScheduleSpec& spec) const override {
    Program p;
    const int m = spec.microbatches;
    for (int mb = 0; mb < m; ++mb) p.push_back(detail::forwardStep(stage, spec.stages, mb, mb));
    for (int mb = m - 1; mb >= 0; --mb) p.push_back(detail::backwardStep(stage, spec.stages, mb, mb));
    p.push_back(detail::updateStep(spec));
    return p;
  }
};

}  // namespace

std::unique_ptr<Schedule> makeGPipeSchedule() { return std::make_unique<GPipe>(); }

}  // namespace sw
