// Data parallel (`dp`) and plain backprop (`bp`, its one-rank case). Each replica runs the whole
// model on its shard of the batch; micro-batches accumulate; gradients are averaged over the
// replicas (ReduceGrads: bucketed allreduce that the Executor overlaps with the last backward,
// as in PyTorch DDP, Li et al. VLDB 2020) before one optimizer step.
#include "algo/backprop/Backprop.h"

namespace sw {
namespace {

class DataParallel : public Schedule {
 public:
  explicit DataParallel(std::string name) : name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  Program build(int stage, const ScheduleSpec& spec) const override {
    Program p;
    for (int mb = 0; mb < spec.microbatches; ++mb) {
      Step s = detail::forwardStep(stage, 1, mb, 0);
      Step b = detail::backwardStep(stage, 1, mb, 0);
      s.insert(s.end(), b.begin(), b.end());
      p.push_back(std::move(s));
    }
    p.push_back(detail::updateStep(spec));
    return p;
  }

 private:
  std::string name_;
};

}  // namespace

std::unique_ptr<Schedule> makeDataParallelSchedule(const std::string& name) {
  return std::make_unique<DataParallel>(name);
}

}  // namespace sw
