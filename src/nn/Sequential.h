// Composite layers: Sequential (a chain) and Residual (main branch + shortcut, summed, then an
// optional activation; the torchvision BasicBlock and WRN blocks are built from it).
#pragma once
#include "nn/Layer.h"

namespace sw {

class Sequential : public Layer {
 public:
  explicit Sequential(Backend& be) : Layer(be) {}
  std::string kind() const override { return "sequential"; }
  Sequential& add(LayerPtr l, const std::string& name = "");
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  void collectParams(std::vector<Param*>& out) override;
  void collectBuffers(std::vector<Buffer*>& out) override;
  double macs(const Shape& in) const override;
  void setName(const std::string& n) override;
  // Reversible when every layer is (and there is at least one).
  bool reversible() const override;
  Tensor inverse(const Tensor& y, Ctx& ctx) override;
  size_t size() const { return layers_.size(); }
  Layer& at(size_t i) { return *layers_.at(i); }
  bool empty() const { return layers_.empty(); }

 private:
  std::vector<LayerPtr> layers_;
  std::vector<std::string> names_;
};

class Residual final : public Layer {
 public:
  // shortcut may be null (identity). post: activation after the sum (kIdentity for none).
  Residual(Backend& be, std::unique_ptr<Sequential> main, LayerPtr shortcut, Act post);
  std::string kind() const override { return "residual"; }
  Shape outputShape(const Shape& in) const override { return main_->outputShape(in); }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  void collectParams(std::vector<Param*>& out) override;
  void collectBuffers(std::vector<Buffer*>& out) override;
  double macs(const Shape& in) const override;
  void setName(const std::string& n) override;

 private:
  std::unique_ptr<Sequential> main_;
  LayerPtr shortcut_;
  Act post_;
};

}  // namespace sw
