// BatchNorm over channels of [n, c] (BatchNorm1d) or [n, c, h, w] (BatchNorm2d); train mode uses
// batch statistics and updates running stats, eval mode uses running stats.
#pragma once
#include "nn/Layer.h"

namespace sw {

class BatchNorm final : public Layer {
 public:
  BatchNorm(Backend& be, int64_t channels, BatchNormOpts o = {});
  std::string kind() const override { return "batchnorm"; }
  Shape outputShape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  void collectParams(std::vector<Param*>& out) override;
  void collectBuffers(std::vector<Buffer*>& out) override;
  void setName(const std::string& n) override;
  Param& gamma() { return gamma_; }
  Param& beta() { return beta_; }
  Buffer& runningMean() { return mean_; }
  Buffer& runningVar() { return var_; }

 private:
  int64_t c_;
  BatchNormOpts o_;
  Param gamma_, beta_;
  Buffer mean_, var_;
};

}  // namespace sw
