// Reversible-network layers (RevNet, seed-petra.md section 2). Activations are pairs (x, x~)
// stored as one tensor [n, 2C, h, w]: channels [0, C) = x, [C, 2C) = x~.
//   RevCoupling (reversible):       y = x~ + F(x),  y~ = x.   Inverse: x = y~, x~ = y - F(y~).
//   RevDownsample (not reversible): h = A(x),  y = B(h) + S(x~),  y~ = h.  Keeps its input.
// Two consecutive couplings form one Gomez et al. (F, G) block. The coupling's inverse computes
// F(y~) once and keeps its context, so reconstruction + backward costs one forward and one
// backward of F (the spec's efficient reversible backward).
#pragma once
#include <memory>

#include "nn/Sequential.h"

namespace sw {

class RevCoupling final : public Layer {
 public:
  RevCoupling(Backend& be, std::unique_ptr<Sequential> f);
  std::string kind() const override { return "rev_coupling"; }
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  bool reversible() const override { return true; }
  Tensor inverse(const Tensor& y, Ctx& ctx) override;
  void collectParams(std::vector<Param*>& out) override { f_->collectParams(out); }
  void collectBuffers(std::vector<Buffer*>& out) override { f_->collectBuffers(out); }
  double macs(const Shape& in) const override;
  void setName(const std::string& n) override;

 private:
  std::unique_ptr<Sequential> f_;
};

class RevDownsample final : public Layer {
 public:
  // a: x -> h (strided), b: h -> y, s: x~ -> shortcut of y.
  RevDownsample(Backend& be, std::unique_ptr<Sequential> a, std::unique_ptr<Sequential> b,
                std::unique_ptr<Sequential> s);
  std::string kind() const override { return "rev_downsample"; }
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  void collectParams(std::vector<Param*>& out) override;
  void collectBuffers(std::vector<Buffer*>& out) override;
  double macs(const Shape& in) const override;
  void setName(const std::string& n) override;

 private:
  std::unique_ptr<Sequential> a_, b_, s_;
};

}  // namespace sw
