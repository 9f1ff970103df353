// Linear layer: two GEMMs backward (dW = dy^T x, dx = dy W), bias reduced over the batch.
#include "nn/Linear.h"

#include <cmath>

#include "core/Error.h"
#include "nn/Init.h"

namespace sw {

Linear::Linear(Backend& be, int64_t in, int64_t out, bool bias, Rng& rng, Init init)
    : Layer(be), in_(in), out_(out) {
  w_.value = initWeight(be, Shape{out, in}, in, out, init, rng);
  w_.grad = be.zeros(Shape{out, in});
  if (bias) {
    b_.value = initBias(be, out, in, rng, init);
    b_.grad = be.zeros(Shape{out});
    b_.decay = WeightDecay::kExclude;
  }
  setName("linear");
}

void Linear::setName(const std::string& n) {
  name_ = n;
  w_.name = n + ".weight";
  b_.name = n + ".bias";
}

Tensor Linear::forward(const Tensor& x, Ctx& ctx, Mode) {
  if (x.shape().perSample() != in_)
    throw ShapeError(name_ + ": expected " + std::to_string(in_) + " input features, got " +
                     x.shape().str());
  Tensor x2 = x.reshape(Shape{x.dim(0), in_});
  Tensor y = be_.empty(Shape{x.dim(0), out_});
  be_.gemm(x2, w_.value, y, GemmOpts{.transB = true});
  if (b_.value.defined()) be_.addBias(y, b_.value);
  ctx.saved = {x2};
  ctx.inShape = x.shape();
  return y;
}

Tensor Linear::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  const Tensor& x = ctx.saved.at(0);
  if (!w_.skipGrad) {
    Accumulate acc = w_.takeAcc();
    be_.gemm(dy, x, w_.grad, GemmOpts{.transA = true, .beta = acc == Accumulate::kYes ? 1.f : 0.f});
  }
  if (b_.value.defined() && !b_.skipGrad) be_.biasGrad(dy, b_.grad, b_.takeAcc());
  Tensor dx;
  if (ig == InputGrad::kNeeded) {
    dx = be_.empty(Shape{dy.dim(0), in_});
    be_.gemm(dy, w_.value, dx, GemmOpts{});
    dx = dx.reshape(ctx.inShape);
  }
  ctx.clear();
  return dx;
}

void Linear::collectParams(std::vector<Param*>& out) {
  out.push_back(&w_);
  if (b_.value.defined()) out.push_back(&b_);
}

}  // namespace sw
