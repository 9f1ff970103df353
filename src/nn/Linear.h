// Linear: y = x W^T + b with W [out, in] (PyTorch layout). Input [n, in] (or [n, ...] flattened).
#pragma once
#include "nn/Layer.h"

namespace sw {

class Linear final : public Layer {
 public:
  Linear(Backend& be, int64_t in, int64_t out, bool bias, Rng& rng, Init init = Init::kPytorchDefault);
  std::string kind() const override { return "linear"; }
  Shape outputShape(const Shape& in) const override { return Shape{in[0], out_}; }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  void collectParams(std::vector<Param*>& out) override;
  double macs(const Shape& in) const override { return double(in[0]) * in_ * out_; }
  void setName(const std::string& n) override;
  Param& weight() { return w_; }
  Param& bias() { return b_; }

 private:
  int64_t in_, out_;
  Param w_, b_;
};

}  // namespace sw
