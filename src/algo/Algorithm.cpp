// The defaults of the Algorithm hooks: what plain (data-parallel, flushed) backprop does.
#include "algo/Algorithm.h"

#include "core/Error.h"

namespace sw {

ScheduleSpec Algorithm::shape(int world, int stages) const {
  Topology topo(world, stages);  // throws when the world is not a multiple of the stages
  ScheduleSpec s;
  s.stages = stages;
  s.replicas = topo.replicas();
  s.microbatches = cfg_.pipe.microbatches;
  // A batch that does not divide by the replicas is split as evenly as possible (data/Loader.h)
  // and the gradients are averaged by sample count; each replica needs a sample per micro-batch.
  const int64_t smallest = cfg_.train.batchSize / s.replicas;
  if (smallest < 1)
    throw ConfigError("train.batch_size = " + std::to_string(cfg_.train.batchSize) + " is smaller than the " +
                      std::to_string(s.replicas) + " replicas (" + topo.str() + "): a replica would get no sample");
  if (smallest < cfg_.pipe.microbatches)
    throw ConfigError("train.batch_size = " + std::to_string(cfg_.train.batchSize) + " gives " +
                      std::to_string(smallest) + " samples to the smallest of " + std::to_string(s.replicas) +
                      " replicas, fewer than pipe.microbatches = " + std::to_string(cfg_.pipe.microbatches));
  return s;
}

ScheduleSpec Algorithm::plan(int world) const { return shape(world, stagesOr(world, world)); }

LoaderPlan Algorithm::loader(const RankCoord& c) const {
  const int64_t b = cfg_.train.batchSize, n = c.replicas;
  return {.seed = cfg_.train.seed, .shard = Shard{c.replica, c.replicas},
          .batch = b / n + (c.replica < b % n ? 1 : 0), .global = b};
}

void Algorithm::flushedRates(const RoundPos& p, RoundInputs& ri) const {
  const float lr = p.lr->at(p.epoch, p.firstBatch + p.batches - 1, p.batchesPerEpoch);
  ri.lr = [lr](int) { return lr; };
  ri.gradScale = (cfg_.train.accumAverage ? 1.f / float(p.batches) : 1.f) / float(cfg_.pipe.microbatches);
}

void Algorithm::perStepRates(const RoundPos& p, RoundInputs& ri, float mult) const {
  const LrSchedule* lr = p.lr;
  const int epoch = p.epoch;
  const int64_t first = p.firstBatch, nb = p.batchesPerEpoch;
  ri.lr = [lr, epoch, first, nb, mult](int k) { return mult * lr->at(epoch, first + k, nb); };
  ri.gradScale = 1.f / float(cfg_.pipe.microbatches);  // one step per mini-batch of M micro-batches
}

void Algorithm::rates(const RoundPos& pos, RoundInputs& ri) const { flushedRates(pos, ri); }

std::vector<Program> rankPrograms(const Algorithm& a, const ScheduleSpec& spec) {
  std::vector<Program> progs;
  const Topology topo(spec.stages * spec.replicas, spec.stages);
  for (int r = 0; r < topo.world(); ++r) {
    const RankCoord me = topo.coord(r);
    progs.push_back(spec.phase == Phase::kEval ? buildEvalProgram(me.stage, spec) : a.build(me, spec));
  }
  return progs;
}

SimResult simulate(const Algorithm& a, const ScheduleSpec& spec, const SimCosts& costs) {
  return simulatePrograms(rankPrograms(a, spec), spec, costs);
}

}  // namespace sw
