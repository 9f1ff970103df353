// Conv2d and ConvTranspose2d (square kernel, stride, padding; PyTorch weight layouts:
// conv [out, in, k, k], transposed conv [in, out, k, k]).
#pragma once
#include "nn/Layer.h"

namespace sw {

struct ConvOpts {
  int64_t in = 1, out = 1, kernel = 3, stride = 1, pad = 0;
  int64_t outputPad = 0;  // ConvTranspose2d only
  bool bias = true;
  Init init = Init::kPytorchDefault;
};

class Conv2d final : public Layer {
 public:
  Conv2d(Backend& be, const ConvOpts& o, Rng& rng);
  std::string kind() const override { return "conv2d"; }
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  void collectParams(std::vector<Param*>& out) override;
  double macs(const Shape& in) const override;
  void setName(const std::string& n) override;
  Param& weight() { return w_; }
  Param& bias() { return b_; }
  const ConvOpts& opts() const { return o_; }

 private:
  ConvGeom geom(const Shape& in) const;
  ConvOpts o_;
  Param w_, b_;
};

// The adjoint of Conv2d: forward is a convolution's backward-data, backward is its forward.
class ConvTranspose2d final : public Layer {
 public:
  ConvTranspose2d(Backend& be, const ConvOpts& o, Rng& rng);
  std::string kind() const override { return "conv_transpose2d"; }
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  void collectParams(std::vector<Param*>& out) override;
  double macs(const Shape& in) const override;
  void setName(const std::string& n) override;
  Param& weight() { return w_; }
  Param& bias() { return b_; }

 private:
  // Geometry of the equivalent forward convolution out-shape -> in-shape.
  ConvGeom geom(const Shape& in) const;
  ConvOpts o_;
  Param w_, b_;
};

}  // namespace sw
