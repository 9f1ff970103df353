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
        float effWd = wd;
        if (cfg_.kind == OptimKind::kLars) {
          // LARC clipping: g <- (g + wd theta) * min(eta |theta| / (|g| + wd |theta| + eps) / lr, 1)
          const double pn = std::sqrt(be_.sumSquares(p.value));
          const double gn = std::sqrt(be_.sumSquares(p.grad));
          if (pn != 0.0 && gn != 0.0) {
            const double local = cfg_.trust * pn / (gn + wd * pn + cfg_.larsEps);
            const float a = static_cast<float>(std::min(local / lr, 1.0));
            if (wd != 0.f) be_.axpy(wd, p.value, p.grad);
            be_.scale(p.grad, a);
          }
          effWd = 0.f;
        }
        const bool first = st.steps == 0;
        if (cfg_.momentum != 0.f && !st.buf.defined()) st.buf = be_.zeros(p.value.shape());
        if (keepLastD_) {
          if (!st.lastD.defined()) st.lastD = be_.empty(p.value.shape());
          be_.copy(p.grad, st.lastD);
          if (effWd != 0.f) be_.axpy(effWd, p.value, st.lastD);
        }
        SgdOpts o{.lr = lr, .momentum = cfg_.momentum, .dampening = cfg_.dampening,
                  .weightDecay = effWd, .nesterov = cfg_.nesterov};
        be_.sgdUpdate(p.value, p.grad, st.buf, o, first);
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
  Tensor dir;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Param& p = *params_[i];
    const ParamState& st = state_[i];
    if (!out[i].defined() || out[i].shape() != p.value.shape()) out[i] = be_.empty(p.value.shape());
    be_.copy(p.value, out[i]);
    if (st.steps == 0) continue;  // never updated: nothing to extrapolate
    // dir = m B + D (or m B); W_hat = W - (lr s) dir, in that order of rounding.
    if (!dir.defined() || dir.numel() < p.value.numel()) dir = be_.empty(Shape{p.value.numel()});
    Tensor d = dir.slice(0, p.value.numel()).reshape(p.value.shape());
    if (withGrad) be_.copy(st.lastD, d);
    else be_.fill(d, 0.f);
    if (st.buf.defined()) be_.axpy(cfg_.momentum, st.buf, d);
    be_.axpy(-lr * s, d, out[i]);
  }
  return true;
}

}  // namespace sw
