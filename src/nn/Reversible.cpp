#include "nn/Reversible.h"

#include "core/Error.h"

namespace sw {
namespace {
Shape half(const Shape& s, int64_t c) {
  std::vector<int64_t> d = s.dims();
  d[1] = c;
  return Shape(d);
}
void checkPair(const Shape& s, const std::string& who) {
  if (s.rank() != 4 || s[1] % 2 != 0)
    throw ShapeError(who + ": expected a channel pair [n, 2C, h, w], got " + s.str());
}
}  // namespace

RevCoupling::RevCoupling(Backend& be, std::unique_ptr<Sequential> f) : Layer(be), f_(std::move(f)) {}

void RevCoupling::setName(const std::string& n) {
  name_ = n;
  f_->setName(n + ".f");
}

Shape RevCoupling::outputShape(const Shape& in) const {
  checkPair(in, name_);
  const Shape h = half(in, in[1] / 2);
  if (f_->outputShape(h) != h) throw ShapeError(name_ + ": F must keep the stream shape " + h.str());
  return in;
}

double RevCoupling::macs(const Shape& in) const { return f_->macs(half(in, in[1] / 2)); }

// Each pass extracts the one half F reads; the backend's coupling op reads the other half from the
// pair itself and writes the whole output pair (one pass instead of split, axpy and concat).
Tensor RevCoupling::forward(const Tensor& x, Ctx& ctx, Mode mode) {
  checkPair(x.shape(), name_);
  Tensor a = be_.empty(half(x.shape(), x.dim(1) / 2)), rest;
  be_.splitChannels(x, a, rest);  // a = the x half; the coupling reads x~ from the pair
  Ctx evalCtx;
  Tensor f = f_->forward(a, training(mode) ? ctx.child(0) : evalCtx, mode);
  Tensor y = be_.empty(x.shape());
  be_.coupling(Coupling::kForward, x, f, y);  // y = x~ + F(x), y~ = x
  return y;
}

Tensor RevCoupling::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  Tensor gy = be_.empty(half(dy.shape(), dy.dim(1) / 2)), rest;
  be_.splitChannels(dy, gy, rest);
  // g_x~ = g_y; g_x = g_y~ + dF/dx^T g_y; F's parameter gradients come from g_y alone.
  Tensor gf = f_->backward(gy, ctx.child(0), InputGrad::kNeeded);
  ctx.clear();
  if (ig == InputGrad::kSkip) return Tensor();
  Tensor dx = be_.empty(dy.shape());
  be_.coupling(Coupling::kForward, dy, gf, dx);  // (g_y~ + F'^T g_y, g_y)
  return dx;
}

Tensor RevCoupling::inverse(const Tensor& y, Ctx& ctx) {
  checkPair(y.shape(), name_);
  Tensor rest, a = be_.empty(half(y.shape(), y.dim(1) / 2));
  be_.splitChannels(y, rest, a);  // a = y~ = x exactly
  Tensor f = f_->forward(a, ctx.child(0), Mode::kRecompute);
  Tensor x = be_.empty(y.shape());
  be_.coupling(Coupling::kInverse, y, f, x);  // x = y~, x~ = y - F(x)
  return x;
}

RevDownsample::RevDownsample(Backend& be, std::unique_ptr<Sequential> a, std::unique_ptr<Sequential> b,
                             std::unique_ptr<Sequential> s)
    : Layer(be), a_(std::move(a)), b_(std::move(b)), s_(std::move(s)) {}

void RevDownsample::setName(const std::string& n) {
  name_ = n;
  a_->setName(n + ".a");
  b_->setName(n + ".b");
  s_->setName(n + ".shortcut");
}

Shape RevDownsample::outputShape(const Shape& in) const {
  checkPair(in, name_);
  const Shape hs = half(in, in[1] / 2);
  const Shape h = a_->outputShape(hs), y = b_->outputShape(h), sc = s_->outputShape(hs);
  if (y != sc || h != y) throw ShapeError(name_ + ": branch shapes " + h.str() + ", " + y.str() + ", " + sc.str() + " differ");
  return half(y, 2 * y[1]);
}

double RevDownsample::macs(const Shape& in) const {
  const Shape hs = half(in, in[1] / 2);
  return a_->macs(hs) + b_->macs(a_->outputShape(hs)) + s_->macs(hs);
}

void RevDownsample::collectParams(std::vector<Param*>& out) {
  a_->collectParams(out);
  b_->collectParams(out);
  s_->collectParams(out);
}

void RevDownsample::collectBuffers(std::vector<Buffer*>& out) {
  a_->collectBuffers(out);
  b_->collectBuffers(out);
  s_->collectBuffers(out);
}

Tensor RevDownsample::forward(const Tensor& x, Ctx& ctx, Mode mode) {
  checkPair(x.shape(), name_);
  const Shape hs = half(x.shape(), x.dim(1) / 2);
  Tensor a = be_.empty(hs), at = be_.empty(hs);
  be_.splitChannels(x, a, at);
  Ctx e0, e1, e2;
  const bool tr = training(mode);
  Tensor h = a_->forward(a, tr ? ctx.child(0) : e0, mode);
  Tensor y = b_->forward(h, tr ? ctx.child(1) : e1, mode);
  Tensor sc = s_->forward(at, tr ? ctx.child(2) : e2, mode);
  Tensor sum = be_.empty(y.shape());
  be_.add(y, sc, sum);
  Tensor out = be_.empty(half(y.shape(), 2 * y.dim(1)));
  be_.concatChannels(sum, h, out);
  return out;
}

Tensor RevDownsample::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  const Shape hs = half(dy.shape(), dy.dim(1) / 2);
  Tensor gy = be_.empty(hs), gh = be_.empty(hs);
  be_.splitChannels(dy, gy, gh);
  Tensor gb = b_->backward(gy, ctx.child(1), InputGrad::kNeeded);
  be_.axpy(1.f, gb, gh);  // h feeds both y~ and B
  Tensor gx = a_->backward(gh, ctx.child(0), ig);
  Tensor gxt = s_->backward(gy, ctx.child(2), ig);
  ctx.clear();
  if (ig == InputGrad::kSkip) return Tensor();
  Tensor dx = be_.empty(half(gx.shape(), 2 * gx.dim(1)));
  be_.concatChannels(gx, gxt, dx);
  return dx;
}

}  // namespace sw
