// Parle's update rule (see Parle.h for the equations and ../shared/spec/seed-parle.md sections 2,
// 3, 5.2 for the two reference codes). Every elementwise update goes through the Backend, so the
// rule runs wherever the parameters live; the only host data is the flat averaging buffer.
// Floating-point order follows the references: (x - m) + rho (x - r) is formed from the two
// differences, the proximal term as gamma (w - x), so a coupling of exactly 0 adds exactly 0 and
// the uncoupled special cases reduce bit for bit to the plain optimizer.
#include "algo/parle/ParleOptimizer.h"

#include <algorithm>
#include <cmath>

#include "core/Error.h"

namespace sw {

double parleScoped(ParleVariant v, double c0, double cmax, double growth, int64_t t, int L) {
  const double e = v == ParleVariant::kOptim2017 ? double(t) : double(L > 0 ? t / L : t);
  return std::min(c0 * std::pow(1.0 + growth, e), cmax);
}

ParleOptimizer::ParleOptimizer(Backend& be, std::vector<Param*> params, Optimizer& inner, ParleOptions opts)
    : be_(be), params_(std::move(params)), inner_(inner), o_(opts), slots_(params_.size()) {
  if (inner_.config().kind != OptimKind::kSgd)
    throw ConfigError("optim.name: Parle's inner and outer steps are SGD with momentum (set optim.name = sgd)");
  if (o_.L < 0 || (o_.L == 0 && o_.variant != ParleVariant::kOptim2017))
    throw ConfigError("parle.L = " + std::to_string(o_.L) +
                      ": L = 0 (Elastic-SGD every mini-batch) exists only in parle.variant = optim2017");
  int64_t largest = 1;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& w = params_[i]->value;
    offsets_.push_back(numel_);
    numel_ += w.numel();
    largest = std::max(largest, w.numel());
    // The anchor starts at the initial weights (spec 2.2: x = z = y; 3.2: w_c <- w).
    if (o_.L > 0) {
      slots_[i].anchor = be_.empty(w.shape());
      be_.copy(w, slots_[i].anchor);
    }
    if (keepsAverage()) {
      slots_[i].avg = be_.empty(w.shape());
      be_.copy(w, slots_[i].avg);
    }
  }
  flat_ = Tensor::zeros(Shape{std::max<int64_t>(numel_, 1)});
  for (Tensor& s : scratch_) s = be_.empty(Shape{largest});
}

// kMpi2018 keeps z across blocks (never reset). kOptim2017 with beta1 = 0 averages nothing: m is
// the last inner iterate, i.e. the weights themselves at the sync.
bool ParleOptimizer::keepsAverage() const {
  return o_.variant == ParleVariant::kMpi2018 || (o_.L > 0 && o_.beta1 != 0.f);
}

float ParleOptimizer::decayOf(const Param& p) const {
  const OptimConfig& c = inner_.config();
  return (!c.decayBnAndBias && p.decay == WeightDecay::kExclude) ? 0.f : c.weightDecay;
}

Tensor ParleOptimizer::scratch(int which, const Shape& s) {
  return scratch_[which].slice(0, s.numel()).reshape(s);
}

Tensor ParleOptimizer::meanOf(size_t i) {
  const Tensor& w = params_[i]->value;
  return be_.fromHost(flat_.slice(offsets_[i], offsets_[i] + w.numel()).reshape(w.shape()));
}

void ParleOptimizer::beginBlock() {
  ++st_.t;
  st_.gamma = parleScoped(o_.variant, o_.gamma0, o_.gammaMax, o_.growth, st_.t, o_.L);
  st_.rho = parleScoped(o_.variant, o_.rho0, o_.rhoMax, o_.growth, st_.t, o_.L);
  for (size_t i = 0; i < params_.size(); ++i) {
    be_.copy(params_[i]->value, slots_[i].anchor);
    if (keepsAverage()) be_.copy(params_[i]->value, slots_[i].avg);
  }
}

void ParleOptimizer::innerStep(float lr, float gradScale) {
  if (o_.variant == ParleVariant::kOptim2017 && o_.L == 0) {
    // Elastic-SGD: d = grad + wd w + rho (w - r), r = the mean taken just before this step.
    ++st_.t;
    st_.gamma = 0;
    st_.rho = parleScoped(o_.variant, o_.rho0, o_.rhoMax, o_.growth, st_.t, o_.L);
    for (size_t i = 0; i < params_.size(); ++i) {
      Param& p = *params_[i];
      if (p.gradFresh) continue;
      if (gradScale != 1.f) be_.scale(p.grad, gradScale);
      if (st_.rho != 0) {
        Tensor e = scratch(0, p.value.shape());
        be_.copy(p.value, e);
        be_.axpy(-1.f, meanOf(i), e);
        be_.axpy(float(st_.rho), e, p.grad);
      }
    }
    inner_.step(lr, 1.f);
    ++st_.stepInBlock;
    return;
  }
  if (o_.variant == ParleVariant::kOptim2017) {
    if (st_.stepInBlock == 0) beginBlock();
    const float g = float(st_.gamma);
    for (size_t i = 0; i < params_.size(); ++i) {
      Param& p = *params_[i];
      if (p.gradFresh) continue;
      if (gradScale != 1.f) be_.scale(p.grad, gradScale);
      if (g != 0.f) {  // + gamma (w - w_c)
        Tensor e = scratch(0, p.value.shape());
        be_.copy(p.value, e);
        be_.axpy(-1.f, slots_[i].anchor, e);
        be_.axpy(g, e, p.grad);
      }
    }
    inner_.step(innerRate(lr), 1.f);  // weight decay + PyTorch (Nesterov) momentum
    if (keepsAverage())
      for (size_t i = 0; i < params_.size(); ++i) {
        be_.scale(slots_[i].avg, o_.beta1);
        be_.axpy(1.f - o_.beta1, params_[i]->value, slots_[i].avg);
      }
    ++st_.stepInBlock;
    return;
  }
  // kMpi2018: gamma from the counter before this step's increment.
  st_.gamma = parleScoped(o_.variant, o_.gamma0, o_.gammaMax, o_.growth, st_.t, o_.L);
  const float g = float(st_.gamma), c = inner_.config().momentum, eta = innerRate(lr);
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    if (p.gradFresh) continue;
    if (gradScale != 1.f) be_.scale(p.grad, gradScale);
    if (g != 0.f) {
      Tensor e = scratch(0, p.value.shape());
      be_.copy(p.value, e);
      be_.axpy(-1.f, slots_[i].anchor, e);
      be_.axpy(g, e, p.grad);
    }
    if (const float wd = decayOf(p); wd != 0.f) be_.axpy(wd, p.value, p.grad);
    Tensor& v = slots_[i].vIn;
    if (!v.defined()) v = be_.zeros(p.value.shape());
    be_.scale(v, c);  // Nesterov-A: v <- c v + d; y <- y - eta (d + v)
    be_.axpy(1.f, p.grad, v);
    be_.axpy(-eta, p.grad, p.value);
    be_.axpy(-eta, v, p.value);
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    be_.scale(slots_[i].avg, o_.beta1);
    be_.axpy(1.f - o_.beta1, params_[i]->value, slots_[i].avg);
  }
  st_.t += o_.counterStep;
  ++st_.stepInBlock;
}

void ParleOptimizer::prepareSync() {
  if (o_.L > 0 && st_.stepInBlock == 0)
    throw Error("Parle synchronisation without an inner step since the last one (program error)");
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& src = (o_.L > 0 && keepsAverage()) ? slots_[i].avg : params_[i]->value;
    Tensor dst = flat_.slice(offsets_[i], offsets_[i] + src.numel()).reshape(src.shape());
    be_.copy(src, dst);
  }
}

void ParleOptimizer::finishSync(float lr) {
  ++st_.syncs;
  if (o_.L == 0) return;  // the mean stays in flat_ for the coupling of the next inner step
  if (o_.variant == ParleVariant::kMpi2018)
    st_.rho = parleScoped(o_.variant, o_.rho0, o_.rhoMax, o_.growth, st_.t, o_.L);
  const float rho = float(st_.rho);
  const OptimConfig& ic = inner_.config();
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    Slot& s = slots_[i];
    const Tensor& m = keepsAverage() ? s.avg : p.value;
    Tensor d = scratch(0, p.value.shape()), e = scratch(1, p.value.shape());
    be_.copy(s.anchor, d);  // d = (x - m) + rho (x - mean)
    be_.axpy(-1.f, m, d);
    be_.copy(s.anchor, e);
    be_.axpy(-1.f, meanOf(i), e);
    be_.axpy(rho, e, d);
    if (o_.variant == ParleVariant::kOptim2017) {
      // w <- w_c - lr (d + mu v_out), PyTorch momentum semantics (first step: v_out = d).
      be_.copy(s.anchor, p.value);
      const bool first = !s.vOut.defined();
      if (first && o_.outerMomentum != 0.f) s.vOut = be_.empty(p.value.shape());
      SgdOpts so{.lr = lr, .momentum = o_.outerMomentum, .dampening = ic.dampening, .weightDecay = 0.f,
                 .nesterov = ic.nesterov};
      be_.sgdUpdate(p.value, d, s.vOut, so, first);
    } else {
      // Applied to the live inner iterate y, not to the anchor (spec 2.3 step 4).
      if (!s.vOut.defined()) s.vOut = be_.zeros(p.value.shape());
      be_.scale(s.vOut, ic.momentum);
      be_.axpy(1.f, d, s.vOut);
      be_.axpy(-lr, d, p.value);
      be_.axpy(-lr, s.vOut, p.value);
    }
    be_.copy(p.value, s.anchor);
  }
  st_.stepInBlock = 0;
}

void ParleOptimizer::packAnchors(Tensor& flat) {
  SW_CHECK(flat.numel() >= numel_, "packAnchors: buffer too small");
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& src = o_.L > 0 ? slots_[i].anchor : params_[i]->value;
    Tensor dst = flat.slice(offsets_[i], offsets_[i] + src.numel()).reshape(src.shape());
    be_.copy(src, dst);
  }
}

}  // namespace sw
