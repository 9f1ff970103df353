// Parle (Chaudhari et al., SysML 2018; spec seed-parle.md sections 3 and 6): every replica runs
// its own flushed pipeline (the inner schedule, built for one replica, so with no ReduceGrads)
// for ParleParams::steps inner optimizer steps, then one ElasticSync over the stage's replicas: one
// allreduce of the stage's parameters per synchronisation, on the communicator that joins the
// same stage of every replica. A round is one synchronisation block. Elastic-SGD (L = 0) couples
// before every step instead: ElasticSync (the mean of the weights) precedes each OptimizerStep.
#include "core/Error.h"
#include "algo/backprop/Backprop.h"
#include "algo/parle/ParleAlgorithm.h"

namespace sw {
namespace {

class Parle : public Schedule {
 public:
  Parle(std::unique_ptr<Schedule> inner, ParleCoupling c) : inner_(std::move(inner)), coupling_(c) {}
  std::string_view name() const override { return "parle"; }
  bool flushed() const override { return false; }  // several optimizer steps per round
  Program build(int stage, const ScheduleSpec& spec) const override {
    const int steps = spec.params.get<ParleParams>().steps;
    if (steps < 1 || spec.microbatches % steps != 0)
      throw Error("parle round of " + std::to_string(spec.microbatches) + " micro-batches cannot be split into " +
                  std::to_string(steps) + " inner steps");
    const int m = spec.microbatches / steps;
    ScheduleSpec one = spec;
    one.replicas = 1;  // the replica alone: no gradient averaging
    one.microbatches = m;
    one.params = {};  // the inner pipeline (1f1b, gpipe, mp) has none of its own
    Program p;
    const Step sync{{.op = Op::kElasticSync}};
    for (int j = 0; j < steps; ++j) {
      for (Step s : inner_->build(stage, one)) {
        for (Instr& in : s)
          if (in.mb >= 0) in.mb += j * m;
        if (coupling_ == ParleCoupling::kEveryStep && !s.empty() && s.front().op == Op::kOptimizerStep)
          p.push_back(sync);
        p.push_back(std::move(s));
      }
    }
    if (coupling_ == ParleCoupling::kAfterSteps) p.push_back(sync);
    return p;
  }

 private:
  std::unique_ptr<Schedule> inner_;
  ParleCoupling coupling_;
};

}  // namespace

std::unique_ptr<Schedule> makeParleSchedule(const std::string& pipeline, ParleCoupling coupling) {
  if (pipeline != "1f1b" && pipeline != "gpipe" && pipeline != "mp")
    throw ConfigError("parle.pipeline = " + pipeline + ": expected 1f1b, gpipe or mp");
  return std::make_unique<Parle>(makePipelineSchedule(pipeline), coupling);
}

}  // namespace sw
