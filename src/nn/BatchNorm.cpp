// Batch normalisation layer.
#include "nn/BatchNorm.h"

#include "core/Error.h"
#include "nn/Init.h"

namespace sw {

BatchNorm::BatchNorm(Backend& be, int64_t channels, BatchNormOpts o) : Layer(be), c_(channels), o_(o) {
  gamma_.value = constTensor(be, Shape{c_}, 1.f);
  beta_.value = constTensor(be, Shape{c_}, 0.f);
  gamma_.grad = be.zeros(Shape{c_});
  beta_.grad = be.zeros(Shape{c_});
  gamma_.decay = beta_.decay = WeightDecay::kExclude;
  mean_.value = constTensor(be, Shape{c_}, 0.f);
  var_.value = constTensor(be, Shape{c_}, 1.f);
  setName("bn");
}

void BatchNorm::setName(const std::string& n) {
  name_ = n;
  gamma_.name = n + ".weight";
  beta_.name = n + ".bias";
  mean_.name = n + ".running_mean";
  var_.name = n + ".running_var";
}

Tensor BatchNorm::forward(const Tensor& x, Ctx& ctx, Mode mode) {
  if (x.rank() < 2 || x.dim(1) != c_)
    throw ShapeError(name_ + ": expected " + std::to_string(c_) + " channels, got " +
                     x.shape().str());
  Tensor y = be_.empty(x.shape());
  if (mode == Mode::kEval) {
    be_.batchNormForwardEval(x, gamma_.value, beta_.value, y, mean_.value, var_.value, o_);
    ctx.clear();
    return y;
  }
  if (x.numel() / c_ < 2)
    throw ShapeError(name_ + ": batch norm in training needs more than one value per channel");
  Tensor m = be_.empty(Shape{c_}), inv = be_.empty(Shape{c_});
  if (mode == Mode::kRecompute) {
    // Same batch statistics, scratch running statistics: a recompute must not count twice.
    Tensor rm = be_.empty(Shape{c_}), rv = be_.empty(Shape{c_});
    be_.copy(mean_.value, rm);
    be_.copy(var_.value, rv);
    be_.batchNormForwardTrain(x, gamma_.value, beta_.value, y, m, inv, rm, rv, o_);
  } else {
    be_.batchNormForwardTrain(x, gamma_.value, beta_.value, y, m, inv, mean_.value, var_.value, o_);
  }
  if (training(mode)) ctx.saved = {x, m, inv};
  else ctx.clear();  // kCalibrate
  return y;
}

Tensor BatchNorm::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  SW_CHECK(ctx.saved.size() == 3, name_ + ": backward without a training-mode forward");
  const Tensor& x = ctx.saved[0];
  Tensor dx;
  if (ig == InputGrad::kNeeded) dx = be_.empty(x.shape());
  if (gamma_.skipGrad) {
    // Input-only: dx needs the same channel sums, so they go to scratch (C floats each).
    Tensor dg = be_.empty(Shape{c_}), db = be_.empty(Shape{c_});
    be_.batchNormBackward(x, dy, gamma_.value, ctx.saved[1], ctx.saved[2], dx, dg, db, Accumulate::kNo);
    ctx.clear();
    return dx;
  }
  // gamma and beta are always written together, so one freshness flag decides for both.
  Accumulate acc = gamma_.takeAcc();
  beta_.gradFresh = false;
  be_.batchNormBackward(x, dy, gamma_.value, ctx.saved[1], ctx.saved[2], dx, gamma_.grad,
                        beta_.grad, acc);
  ctx.clear();
  return dx;
}

void BatchNorm::collectParams(std::vector<Param*>& out) {
  out.push_back(&gamma_);
  out.push_back(&beta_);
}

void BatchNorm::collectBuffers(std::vector<Buffer*>& out) {
  out.push_back(&mean_);
  out.push_back(&var_);
}

}  // namespace sw
