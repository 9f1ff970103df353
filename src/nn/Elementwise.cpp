// Activation, Dropout and Flatten layers.
#include "nn/Elementwise.h"

#include "core/Error.h"

namespace sw {

std::string Activation::kind() const {
  switch (a_) {
    case Act::kRelu: return "relu";
    case Act::kElu: return "elu";
    case Act::kTanh: return "tanh";
    case Act::kSigmoid: return "sigmoid";
    default: return "identity";
  }
}

Tensor Activation::forward(const Tensor& x, Ctx& ctx, Mode mode) {
  Tensor y = be_.empty(x.shape());
  be_.actForward(a_, alpha_, x, y);
  if (training(mode)) {
    // ReLU, Tanh, Sigmoid need only y; ELU needs x's sign too.
    if (a_ == Act::kElu) ctx.saved = {x, y};
    else ctx.saved = {Tensor(), y};
  }
  return y;
}

Tensor Activation::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  SW_CHECK(ctx.saved.size() == 2, "activation backward without forward");
  Tensor dx;
  if (ig == InputGrad::kNeeded) {
    dx = be_.empty(dy.shape());
    be_.actBackward(a_, alpha_, ctx.saved[0], ctx.saved[1], dy, dx);
  }
  ctx.clear();
  return dx;
}

Tensor Dropout::forward(const Tensor& x, Ctx& ctx, Mode mode) {
  if (!training(mode) || p_ <= 0.f) {  // eval and calibration passes: identity
    ctx.clear();
    return x;
  }
  Tensor y = be_.empty(x.shape()), mask = be_.empty(x.shape());
  be_.dropoutForward(x, y, mask, p_, *rng_);
  ctx.saved = {mask};
  return y;
}

Tensor Dropout::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  if (ig == InputGrad::kSkip) {
    ctx.clear();
    return Tensor();
  }
  if (ctx.saved.empty()) return dy;  // p == 0: identity
  Tensor dx = be_.empty(dy.shape());
  be_.mul(dy, ctx.saved[0], dx);
  ctx.clear();
  return dx;
}

Tensor Flatten::forward(const Tensor& x, Ctx& ctx, Mode) {
  ctx.inShape = x.shape();
  return x.reshape(outputShape(x.shape()));
}

Tensor Flatten::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  if (ig == InputGrad::kSkip) return Tensor();
  return dy.reshape(ctx.inShape);
}

}  // namespace sw
