// UpdateRule: what OptimizerStep and ElasticSync do on a rank whose algorithm replaces the plain
// optimizer step (Parle: the proximal inner step and the elastic synchronisation with the
// replica average). The Executor calls it when StageContext::rule is set; otherwise
// OptimizerStep is Optimizer::step and ElasticSync is an error.
#pragma once

namespace sw {

class UpdateRule {
 public:
  virtual ~UpdateRule() = default;
  // OptimizerStep: apply the accumulated gradients (multiplied by gradScale) at rate `lr`.
  virtual void step(float lr, float gradScale) = 0;
  // ElasticSync: one collective over the stage's replicas, then the coupling update at rate `lr`
  // (the rate of the round's last optimizer step). Returns the seconds spent blocked on the
  // collective.
  virtual double elasticSync(float lr) = 0;
};

}  // namespace sw
