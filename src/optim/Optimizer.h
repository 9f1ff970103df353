// Optimizers with PyTorch semantics (formulas: ../shared/spec/seed-petra.md section 4):
// SGD (momentum, dampening, Nesterov, weight decay), Adam (AMSGrad, L2 weight decay) and LARS
// (LARC-style clipped trust ratio before an SGD-momentum step). Weight decay can be excluded from
// batch-norm parameters and biases. Parameters that received no gradient since zeroGrad() are
// skipped, like PyTorch's grad=None.
#pragma once
#include <string>
#include <vector>

#include "nn/Layer.h"

namespace sw {

enum class OptimKind { kSgd, kAdam, kLars };

struct OptimConfig {
  OptimKind kind = OptimKind::kSgd;
  float momentum = 0.9f, dampening = 0.f, weightDecay = 0.f;
  bool nesterov = false;
  bool decayBnAndBias = true;  // false: no weight decay on BN parameters and biases
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  bool amsgrad = false;
  float trust = 0.02f, larsEps = 1e-8f;  // LARS trust coefficient and epsilon
};
OptimKind parseOptimKind(const std::string& s);  // throws ConfigError

// Per-parameter optimizer state, exposed for checkpoints.
struct ParamState {
  Tensor buf;          // SGD/LARS momentum
  Tensor lastD;        // last effective gradient g + wd W (kept only for weight prediction)
  Tensor m, v, vmax;   // Adam moments
  int64_t steps = 0;   // updates applied to this parameter
};

class Optimizer {
 public:
  Optimizer(Backend& be, std::vector<Param*> params, OptimConfig cfg);
  // One update at learning rate `lr`. gradScale multiplies every gradient first (1/k for
  // averaged accumulation over k micro-batches).
  void step(float lr, float gradScale = 1.f);
  // SpecTrain weight prediction (seed-spectrain.md 2.2) on SGD with momentum m: out[i] =
  // W - lr s (m B + D) with the last effective gradient D (withGrad) or W - lr s m B (not).
  // Needs keepLastGradient(true) before the steps; returns false (out untouched) while no
  // step has been applied yet, when nothing is predicted.
  void keepLastGradient(bool on) { keepLastD_ = on; }
  bool predict(float lr, float s, bool withGrad, std::vector<Tensor>& out);
  const std::vector<Param*>& params() const { return params_; }
  std::vector<ParamState>& state() { return state_; }
  const OptimConfig& config() const { return cfg_; }
  int64_t stepCount() const { return steps_; }
  void setStepCount(int64_t s) { steps_ = s; }

 private:
  SgdOpts sgdOpts(float lr, float weightDecay) const;
  // st.lastD = p.grad + weightDecay p.value: the effective gradient a step applies.
  void keepGradient(const Param& p, ParamState& st, float weightDecay);
  Backend& be_;
  std::vector<Param*> params_;
  std::vector<ParamState> state_;
  OptimConfig cfg_;
  int64_t steps_ = 0;
  bool keepLastD_ = false;
};

}  // namespace sw
