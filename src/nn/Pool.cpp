// Pooling layers.
#include "nn/Pool.h"

#include "core/Error.h"

namespace sw {

Shape MaxPool2d::outputShape(const Shape& in) const {
  PoolGeom g = PoolGeom::make(in, k_, s_, p_);
  return Shape{g.n, g.c, g.oh, g.ow};
}

Tensor MaxPool2d::forward(const Tensor& x, Ctx& ctx, Mode) {
  PoolGeom g = PoolGeom::make(x.shape(), k_, s_, p_);
  Shape os{g.n, g.c, g.oh, g.ow};
  Tensor y = be_.empty(os), idx = be_.empty(os);
  be_.maxPoolForward(x, y, idx, g);
  ctx.saved = {idx};
  ctx.inShape = x.shape();
  return y;
}

Tensor MaxPool2d::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  Tensor dx;
  if (ig == InputGrad::kNeeded) {
    PoolGeom g = PoolGeom::make(ctx.inShape, k_, s_, p_);
    dx = be_.empty(ctx.inShape);
    be_.maxPoolBackward(dy, ctx.saved.at(0), dx, g);
  }
  ctx.clear();
  return dx;
}

void MaxUnpool2d::bind(Ctx& ctx, const Tensor& idx, const Shape& outShape) {
  ctx.saved = {idx};
  ctx.inShape = outShape;
}

Shape MaxUnpool2d::outputShape(const Shape& in) const {
  return Shape{in[0], in[1], (in[2] - 1) * s_ + k_, (in[3] - 1) * s_ + k_};
}

Tensor MaxUnpool2d::forward(const Tensor& x, Ctx& ctx, Mode) {
  if (ctx.saved.empty())
    throw ShapeError(name_ + ": MaxUnpool2d needs indices bound from its MaxPool2d");
  const Shape& os = ctx.inShape;
  PoolGeom g = PoolGeom::make(os, k_, s_, 0);
  if (x.shape() != Shape{g.n, g.c, g.oh, g.ow})
    throw ShapeError(name_ + ": unpool input " + x.shape().str() + " does not match indices");
  Tensor y = be_.empty(os);
  be_.maxUnpoolForward(x, ctx.saved[0], y, g);
  return y;
}

Tensor MaxUnpool2d::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  Tensor dx;
  if (ig == InputGrad::kNeeded) {
    PoolGeom g = PoolGeom::make(ctx.inShape, k_, s_, 0);
    dx = be_.empty(Shape{g.n, g.c, g.oh, g.ow});
    be_.maxUnpoolBackward(dy, ctx.saved.at(0), dx, g);
  }
  return dx;
}

PoolGeom AvgPool2d::geom(const Shape& in) const {
  if (k_ <= 0) {
    if (in.rank() != 4 || in[2] != in[3])
      throw ShapeError(name_ + ": global average pool needs square NCHW input, got " + in.str());
    return PoolGeom::make(in, in[2], in[2], 0);
  }
  return PoolGeom::make(in, k_, s_, p_);
}

Shape AvgPool2d::outputShape(const Shape& in) const {
  PoolGeom g = geom(in);
  return Shape{g.n, g.c, g.oh, g.ow};
}

Tensor AvgPool2d::forward(const Tensor& x, Ctx& ctx, Mode) {
  PoolGeom g = geom(x.shape());
  Tensor y = be_.empty(Shape{g.n, g.c, g.oh, g.ow});
  be_.avgPoolForward(x, y, g);
  ctx.inShape = x.shape();
  return y;
}

Tensor AvgPool2d::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  if (ig == InputGrad::kSkip) return Tensor();
  PoolGeom g = geom(ctx.inShape);
  Tensor dx = be_.empty(ctx.inShape);
  be_.avgPoolBackward(dy, dx, g);
  return dx;
}

Shape AdaptiveAvgPool2d::outputShape(const Shape& in) const {
  if (in.rank() != 4) throw ShapeError(name_ + ": adaptive average pool needs NCHW input, got " + in.str());
  return Shape{in[0], in[1], oh_, ow_};
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x, Ctx& ctx, Mode) {
  Tensor y = be_.empty(outputShape(x.shape()));
  be_.adaptiveAvgPoolForward(x, y);
  ctx.inShape = x.shape();
  return y;
}

Tensor AdaptiveAvgPool2d::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  if (ig == InputGrad::kSkip) return Tensor();
  Tensor dx = be_.empty(ctx.inShape);
  be_.adaptiveAvgPoolBackward(dy, dx);
  return dx;
}

}  // namespace sw
