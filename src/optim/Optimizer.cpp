// Optimizer steps. State tensors are allocated lazily on a parameter's first update so that a
// checkpoint of a never-stepped optimizer is empty, as in PyTorch.
#include "optim/Optimizer.h"

#include <cmath>

#include "core/Error.h"

namespace sw {

OptimKind parseOptimKind(const std::string& s) {
  if (s == "sgd") return OptimKind::kSgd;
  if (s == "adam") return OptimKind::kAdam;
  if (s == "lars") return OptimKind::kLars;
  throw ConfigError("optim.name: unknown optimizer '" + s + "' (expected sgd, adam or lars)");
}

Optimizer::Optimizer(Backend& be, std::vector<Param*> params, OptimConfig cfg)
    : be_(be), params_(std::move(params)), state_(params_.size()), cfg_(cfg) {}

void Optimizer::step(float lr, float gradScale) {
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    if (p.gradFresh) continue;  // no gradient this step
    ParamState& st = state_[i];
    if (gradScale != 1.f) be_.scale(p.grad, gradScale);
    const float wd =
        (!cfg_.decayBnAndBias && p.decay == WeightDecay::kExclude) ? 0.f : cfg_.weightDecay;
    switch (cfg_.kind) {
      case OptimKind::kLars:
      case OptimKind::kSgd: {
        const bool first = st.steps == 0;
        if (cfg_.momentum != 0.f && !st.buf.defined()) st.buf = be_.zeros(p.value.shape());
        if (cfg_.kind == OptimKind::kSgd) {
          if (keepLastD_) keepGradient(p, st, wd);  // before W moves
          be_.sgdUpdate(p.value, p.grad, st.buf, sgdOpts(lr, wd), first);
        } else {
          // LARC clipping: g <- (g + wd theta) min(eta |theta| / (|g| + wd |theta| + eps) / lr, 1),
          // then SGD with momentum and no further decay, in one backend op that leaves the
          // clipped gradient in p.grad.
          const LarsOpts o{.sgd = sgdOpts(lr, wd), .trust = cfg_.trust, .eps = cfg_.larsEps};
          be_.larsUpdate(p.value, p.grad, st.buf, o, first);
          if (keepLastD_) keepGradient(p, st, 0.f);
        }
        break;
      }
      case OptimKind::kAdam: {
        if (!st.m.defined()) {
          st.m = be_.zeros(p.value.shape());
          st.v = be_.zeros(p.value.shape());
          if (cfg_.amsgrad) st.vmax = be_.zeros(p.value.shape());
        }
        AdamOpts o{.lr = lr, .beta1 = cfg_.beta1, .beta2 = cfg_.beta2, .eps = cfg_.eps,
                   .weightDecay = wd, .amsgrad = cfg_.amsgrad, .step = st.steps + 1};
        be_.adamUpdate(p.value, p.grad, st.m, st.v, st.vmax, o);
        break;
      }
    }
    ++st.steps;
  }
  ++steps_;
}

bool Optimizer::predict(float lr, float s, bool withGrad, std::vector<Tensor>& out) {
  if (cfg_.kind != OptimKind::kSgd) throw ConfigError("weight prediction needs optim.name = sgd");
  if (!keepLastD_) throw Error("Optimizer::predict without keepLastGradient(true)");
  if (steps_ == 0) return false;
  out.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const Param& p = *params_[i];
    const ParamState& st = state_[i];
    if (!out[i].defined() || out[i].shape() != p.value.shape()) out[i] = be_.empty(p.value.shape());
    if (st.steps == 0) {  // never updated: nothing to extrapolate
      be_.copy(p.value, out[i]);
      continue;
    }
    // W_hat = W - (lr s)(m B + D), or W - (lr s) m B without the gradient term.
    be_.predictWeights(p.value, st.buf, withGrad ? st.lastD : Tensor(), cfg_.momentum, lr * s, out[i]);
  }
  return true;
}

void Optimizer::keepGradient(const Param& p, ParamState& st, float weightDecay) {
  if (!st.lastD.defined()) st.lastD = be_.empty(p.value.shape());
  be_.copy(p.grad, st.lastD);
  if (weightDecay != 0.f) be_.axpy(weightDecay, p.value, st.lastD);
}

SgdOpts Optimizer::sgdOpts(float lr, float weightDecay) const {
  return SgdOpts{.lr = lr, .momentum = cfg_.momentum, .dampening = cfg_.dampening,
                 .weightDecay = weightDecay, .nesterov = cfg_.nesterov};
}

}  // namespace sw
