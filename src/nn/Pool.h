// Pooling layers: MaxPool2d (records argmax indices), MaxUnpool2d (places values back at indices
// recorded by a paired MaxPool2d, for DTP's feedback net), AvgPool2d and global average pooling.
#pragma once
#include "nn/Layer.h"

namespace sw {

class MaxPool2d final : public Layer {
 public:
  MaxPool2d(Backend& be, int64_t kernel, int64_t stride, int64_t pad = 0)
      : Layer(be), k_(kernel), s_(stride), p_(pad) {}
  std::string kind() const override { return "maxpool2d"; }
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;
  // The argmax indices and input shape saved by the last training forward into `ctx`.
  static const Tensor& indices(const Ctx& ctx) { return ctx.saved.at(0); }
  int64_t kernel() const { return k_; }
  int64_t stride() const { return s_; }

 private:
  int64_t k_, s_, p_;
};

class MaxUnpool2d final : public Layer {
 public:
  MaxUnpool2d(Backend& be, int64_t kernel, int64_t stride) : Layer(be), k_(kernel), s_(stride) {}
  std::string kind() const override { return "maxunpool2d"; }
  // Binds the indices (from MaxPool2d::indices) and the output (= pool input) shape for the next
  // forward on this ctx.
  static void bind(Ctx& ctx, const Tensor& idx, const Shape& outShape);
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;

 private:
  int64_t k_, s_;
};

class AvgPool2d final : public Layer {
 public:
  // kernel <= 0 means global average pooling (kernel = input height = width).
  AvgPool2d(Backend& be, int64_t kernel, int64_t stride, int64_t pad = 0)
      : Layer(be), k_(kernel), s_(stride), p_(pad) {}
  std::string kind() const override { return k_ > 0 ? "avgpool2d" : "global_avgpool"; }
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;

 private:
  PoolGeom geom(const Shape& in) const;
  int64_t k_, s_, p_;
};

// AdaptiveAvgPool2d to a fixed (oh, ow), PyTorch bins (VGG16's 7x7 before the classifier; on a
// 1x1 CIFAR map it replicates each value).
class AdaptiveAvgPool2d final : public Layer {
 public:
  AdaptiveAvgPool2d(Backend& be, int64_t oh, int64_t ow) : Layer(be), oh_(oh), ow_(ow) {}
  std::string kind() const override { return "adaptive_avgpool2d"; }
  Shape outputShape(const Shape& in) const override;
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override;
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override;

 private:
  int64_t oh_, ow_;
};

}  // namespace sw
