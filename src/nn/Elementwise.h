// Shape-preserving layers: activations (ReLU, ELU, Tanh, Sigmoid), Dropout, Flatten.
#pragma once
#include "nn/Layer.h"

namespace sw {

class Activation final : public Layer {
 public:
  Activation(Backend& be, Act a, float alpha = 1.f) : Layer(be), a_(a), alpha_(alpha) {}
  std::string kind() const override;
  Shape outputShape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  Act act() const { return a_; }
  float alpha() const { return alpha_; }

 private:
  Act a_;
  float alpha_;
};

// Inverted dropout. The mask stream comes from a generator shared by the model (checkpointed).
class Dropout final : public Layer {
 public:
  Dropout(Backend& be, float p, Rng* rng) : Layer(be), p_(p), rng_(rng) {}
  std::string kind() const override { return "dropout"; }
  Shape outputShape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  float p() const { return p_; }

 private:
  float p_;
  Rng* rng_;
};

class Flatten final : public Layer {
 public:
  explicit Flatten(Backend& be) : Layer(be) {}
  std::string kind() const override { return "flatten"; }
  Shape outputShape(const Shape& in) const override { return Shape{in[0], in.perSample()}; }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
};

}  // namespace sw
