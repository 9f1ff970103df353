// Vanilla model parallel (`mp`): the model's blocks are split over stages and one micro-batch is
// in flight at a time: it flows forward through every stage, then backward, before the next
// enters. Idle fraction (S-1)/S; the baseline the pipelined schedules improve on.
#include "algo/backprop/Backprop.h"

namespace sw {
namespace {

class ModelParallel : public Schedule {
 public:
  std::string_view name() const override { return "mp"; }
  Program build(int stage, const ScheduleSpec& spec) const override {
    Program p;
    for (int mb = 0; mb < spec.microbatches; ++mb) {
      p.push_back(detail::forwardStep(stage, spec.stages, mb, 0));
      p.push_back(detail::backwardStep(stage, spec.stages, mb, 0));
    }
    p.push_back(detail::updateStep(spec));
    return p;
  }
};

}  // namespace

std::unique_ptr<Schedule> makeModelParallelSchedule() { return std::make_unique<ModelParallel>(); }

}  // namespace sw
