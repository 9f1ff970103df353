// The backprop family's Algorithm: which schedule, and the rank-count rules (bp: one rank; dp:
// one stage, every rank a replica; pipelines: every rank a stage unless pipe.stages says how many
// ranks form one replica's pipeline, the rest replicate it).
#include "algo/backprop/Backprop.h"

#include "core/Error.h"

namespace sw {
namespace {

class Backprop : public Algorithm {
 public:
  Backprop(const TrainConfig& cfg, BackpropKind kind) : Algorithm(cfg), kind_(kind) {
    const std::string& a = cfg.train.algo;
    sched_ = onePerReplica() ? makeDataParallelSchedule(a)
             : kind == BackpropKind::kMp   ? makeModelParallelSchedule()
             : kind == BackpropKind::kGPipe ? makeGPipeSchedule()
                                            : makeOneFOneBSchedule();
  }
  ScheduleSpec plan(int world) const override {
    const std::string& a = cfg_.train.algo;
    const int stages = stagesOr(world, onePerReplica() ? 1 : world);
    if (onePerReplica() && stages > 1)
      throw ConfigError("train.algo = " + a + " runs 1 stage per replica, pipe.stages = " + std::to_string(stages));
    if (kind_ == BackpropKind::kBp && world != 1)
      throw ConfigError("train.algo = bp runs on one rank but this job has " + std::to_string(world) +
                        " (use train.algo = dp for data parallel)");
    return shape(world, stages);
  }
  Program build(const RankCoord& me, const ScheduleSpec& spec) const override { return sched_->build(me.stage, spec); }

 private:
  bool onePerReplica() const { return kind_ == BackpropKind::kBp || kind_ == BackpropKind::kDp; }
  BackpropKind kind_;
  std::unique_ptr<Schedule> sched_;
};

}  // namespace

std::unique_ptr<Schedule> makePipelineSchedule(const std::string& name) {
  if (name == "mp") return makeModelParallelSchedule();
  if (name == "gpipe") return makeGPipeSchedule();
  if (name == "1f1b") return makeOneFOneBSchedule();
  throw ConfigError("pipeline schedule '" + name + "': expected mp, gpipe or 1f1b");
}

std::unique_ptr<Algorithm> makeBackprop(const TrainConfig& cfg, BackpropKind kind) {
  return std::make_unique<Backprop>(cfg, kind);
}

}  // namespace sw
