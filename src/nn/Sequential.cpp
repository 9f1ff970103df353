// Sequential and Residual composites. Each child gets its own sub-Ctx at the same index.
#include "nn/Sequential.h"

#include "core/Error.h"

namespace sw {

Sequential& Sequential::add(LayerPtr l, const std::string& name) {
  names_.push_back(name.empty() ? std::to_string(layers_.size()) : name);
  layers_.push_back(std::move(l));
  layers_.back()->setName(name_.empty() ? names_.back() : name_ + "." + names_.back());
  return *this;
}

void Sequential::setName(const std::string& n) {
  name_ = n;
  for (size_t i = 0; i < layers_.size(); ++i)
    layers_[i]->setName(n.empty() ? names_[i] : n + "." + names_[i]);
}

Shape Sequential::outputShape(const Shape& in) const {
  Shape s = in;
  for (const auto& l : layers_) s = l->outputShape(s);
  return s;
}

double Sequential::macs(const Shape& in) const {
  double m = 0;
  Shape s = in;
  for (const auto& l : layers_) {
    m += l->macs(s);
    s = l->outputShape(s);
  }
  return m;
}

Tensor Sequential::forward(const Tensor& x, Ctx& ctx, Mode mode) {
  Tensor h = x;
  for (size_t i = 0; i < layers_.size(); ++i) h = layers_[i]->forward(h, ctx.child(i), mode);
  return h;
}

Tensor Sequential::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  Tensor g = dy;
  for (size_t i = layers_.size(); i-- > 0;) {
    InputGrad need = (i == 0) ? ig : InputGrad::kNeeded;
    g = layers_[i]->backward(g, ctx.child(i), need);
  }
  ctx.clear();
  return g;
}

void Sequential::collectParams(std::vector<Param*>& out) {
  for (auto& l : layers_) l->collectParams(out);
}

void Sequential::collectBuffers(std::vector<Buffer*>& out) {
  for (auto& l : layers_) l->collectBuffers(out);
}

Residual::Residual(Backend& be, std::unique_ptr<Sequential> main, LayerPtr shortcut, Act post)
    : Layer(be), main_(std::move(main)), shortcut_(std::move(shortcut)), post_(post) {
  // The post-activation runs in place on the sum, which only an output-based backward allows.
  SW_CHECK(post == Act::kIdentity || post == Act::kRelu, "Residual supports ReLU or no post-activation");
}

void Residual::setName(const std::string& n) {
  name_ = n;
  main_->setName(n);
  if (shortcut_) shortcut_->setName(n + ".shortcut");
}

double Residual::macs(const Shape& in) const {
  return main_->macs(in) + (shortcut_ ? shortcut_->macs(in) : 0.0);
}

bool Sequential::reversible() const {
  if (layers_.empty()) return false;
  for (const auto& l : layers_)
    if (!l->reversible()) return false;
  return true;
}

Tensor Sequential::inverse(const Tensor& y, Ctx& ctx) {
  if (!reversible()) throw Error(name_ + ": inverse of a block that is not reversible");
  Tensor x = y;
  for (size_t i = layers_.size(); i-- > 0;) x = layers_[i]->inverse(x, ctx.child(i));
  ctx.inShape = x.shape();
  return x;
}

Tensor Residual::forward(const Tensor& x, Ctx& ctx, Mode mode) {
  Tensor a = main_->forward(x, ctx.child(0), mode);
  Tensor s = shortcut_ ? shortcut_->forward(x, ctx.child(1), mode) : x;
  if (a.shape() != s.shape())
    throw ShapeError(name_ + ": residual branch " + a.shape().str() + " vs shortcut " +
                     s.shape().str());
  Tensor y = be_.empty(a.shape());
  be_.add(a, s, y);
  if (post_ != Act::kIdentity) {
    be_.actForward(post_, 1.f, y, y);  // in place: ReLU backward needs only the output
    if (training(mode)) ctx.saved = {y};
  }
  return y;
}

Tensor Residual::backward(const Tensor& dy, Ctx& ctx, InputGrad ig) {
  Tensor g = dy;
  if (post_ != Act::kIdentity) {
    g = be_.empty(dy.shape());
    be_.actBackward(post_, 1.f, ctx.saved.at(0), ctx.saved.at(0), dy, g);
  }
  Tensor dx = main_->backward(g, ctx.child(0), ig);
  // The shortcut's backward runs even when dx is not needed: its parameters need gradients.
  Tensor dxShort = shortcut_ ? shortcut_->backward(g, ctx.child(1), ig) : g;
  if (ig == InputGrad::kNeeded) be_.axpy(1.f, dxShort, dx);
  ctx.clear();
  return dx;
}

void Residual::collectParams(std::vector<Param*>& out) {
  main_->collectParams(out);
  if (shortcut_) shortcut_->collectParams(out);
}

void Residual::collectBuffers(std::vector<Buffer*>& out) {
  main_->collectBuffers(out);
  if (shortcut_) shortcut_->collectBuffers(out);
}

}  // namespace sw
