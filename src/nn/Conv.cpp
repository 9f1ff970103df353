// Convolution layers on the Backend's conv primitives.
#include "nn/Conv.h"

#include "core/Error.h"
#include "nn/Init.h"

namespace sw {

Conv2d::Conv2d(Backend& be, const ConvOpts& o, Rng& rng) : Layer(be), o_(o) {
  const int64_t fanIn = o.in * o.kernel * o.kernel, fanOut = o.out * o.kernel * o.kernel;
  Shape ws{o.out, o.in, o.kernel, o.kernel};
  w_.value = initWeight(be, ws, fanIn, fanOut, o.init, rng);
  w_.grad = be.zeros(ws);
  if (o.bias) {
    b_.value = initBias(be, o.out, fanIn, rng, o.init);
    b_.grad = be.zeros(Shape{o.out});
    b_.decay = WeightDecay::kExclude;
  }
  setName("conv");
}

void Conv2d::setName(const std::string& n) {
  name_ = n;
  w_.name = n + ".weight";
  b_.name = n + ".bias";
}

ConvGeom Conv2d::geom(const Shape& in) const {
  if (in.rank() != 4 || in[1] != o_.in)
    throw ShapeError(name_ + ": expected input [n," + std::to_string(o_.in) + ",h,w], got " +
                     in.str());
  return ConvGeom::make(in, o_.out, o_.kernel, o_.kernel, o_.stride, o_.pad);
}

Shape Conv2d::outputShape(const Shape& in) const {
  ConvGeom g = geom(in);
  return Shape{g.n, g.k, g.oh, g.ow};
}

double Conv2d::macs(const Shape& in) const {
  ConvGeom g = geom(in);
  return double(g.n) * g.k * g.oh * g.ow * g.c * g.r * g.s;
}

Tensor Conv2d::forward(const Tensor& x, Ctx& ctx, Mode) {
  ConvGeom g = geom(x.shape());
  Tensor y = be_.empty(Shape{g.n, g.k, g.oh, g.ow});
  be_.convForward(x, w_.value, b_.value, y, g);
  ctx.saved = {x};
  return y;
}

Tensor Conv2d::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  const Tensor& x = ctx.saved.at(0);
  ConvGeom g = geom(x.shape());
  // The bias gradient has its own freshness flag, so it is reduced separately.
  if (b_.value.defined() && !b_.skipGrad) be_.biasGrad(dy, b_.grad, b_.takeAcc());
  Tensor dx;
  if (ig == InputGrad::kNeeded) dx = be_.empty(x.shape());
  const bool wantW = !w_.skipGrad;
  const Accumulate accW = wantW ? w_.takeAcc() : Accumulate::kNo;
  be_.convBackward(x, dy, w_.value, wantW ? &w_.grad : nullptr, accW, dx.defined() ? &dx : nullptr,
                   g);
  ctx.clear();
  return dx;
}

void Conv2d::collectParams(std::vector<Param*>& out) {
  out.push_back(&w_);
  if (b_.value.defined()) out.push_back(&b_);
}

ConvTranspose2d::ConvTranspose2d(Backend& be, const ConvOpts& o, Rng& rng) : Layer(be), o_(o) {
  // PyTorch computes fan_in from weight dim 1 (= out channels) for transposed convs.
  const int64_t fanIn = o.out * o.kernel * o.kernel, fanOut = o.in * o.kernel * o.kernel;
  Shape ws{o.in, o.out, o.kernel, o.kernel};
  w_.value = initWeight(be, ws, fanIn, fanOut, o.init, rng);
  w_.grad = be.zeros(ws);
  if (o.bias) {
    b_.value = initBias(be, o.out, fanIn, rng, o.init);
    b_.grad = be.zeros(Shape{o.out});
    b_.decay = WeightDecay::kExclude;
  }
  setName("convt");
}

void ConvTranspose2d::setName(const std::string& n) {
  name_ = n;
  w_.name = n + ".weight";
  b_.name = n + ".bias";
}

Shape ConvTranspose2d::outputShape(const Shape& in) const {
  if (in.rank() != 4 || in[1] != o_.in)
    throw ShapeError(name_ + ": expected input [n," + std::to_string(o_.in) + ",h,w], got " +
                     in.str());
  const int64_t oh = (in[2] - 1) * o_.stride - 2 * o_.pad + o_.kernel + o_.outputPad;
  const int64_t ow = (in[3] - 1) * o_.stride - 2 * o_.pad + o_.kernel + o_.outputPad;
  return Shape{in[0], o_.out, oh, ow};
}

ConvGeom ConvTranspose2d::geom(const Shape& in) const {
  Shape out = outputShape(in);
  ConvGeom g = ConvGeom::make(out, o_.in, o_.kernel, o_.kernel, o_.stride, o_.pad);
  SW_CHECK(g.oh == in[2] && g.ow == in[3], name_ + ": inconsistent transposed-conv geometry");
  return g;
}

double ConvTranspose2d::macs(const Shape& in) const {
  ConvGeom g = geom(in);
  return double(g.n) * g.k * g.oh * g.ow * g.c * g.r * g.s;
}

Tensor ConvTranspose2d::forward(const Tensor& x, Ctx& ctx, Mode) {
  ConvGeom g = geom(x.shape());
  Tensor y = be_.empty(outputShape(x.shape()));
  be_.convBackwardData(x, w_.value, y, g, Accumulate::kNo);
  if (b_.value.defined()) be_.addBias(y, b_.value);
  ctx.saved = {x};
  return y;
}

Tensor ConvTranspose2d::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  const Tensor& x = ctx.saved.at(0);
  ConvGeom g = geom(x.shape());
  // dW[in, out, k, k]: the forward conv (dy -> x) filter gradient with "output grad" = x.
  if (!w_.skipGrad) be_.convBackwardFilter(dy, x, w_.grad, nullptr, g, w_.takeAcc());
  if (b_.value.defined() && !b_.skipGrad) be_.biasGrad(dy, b_.grad, b_.takeAcc());
  Tensor dx;
  if (ig == InputGrad::kNeeded) {
    dx = be_.empty(x.shape());
    be_.convForward(dy, w_.value, Tensor(), dx, g);
  }
  ctx.clear();
  return dx;
}

void ConvTranspose2d::collectParams(std::vector<Param*>& out) {
  out.push_back(&w_);
  if (b_.value.defined()) out.push_back(&b_);
}

}  // namespace sw
