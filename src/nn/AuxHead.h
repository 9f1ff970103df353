// Auxiliary heads of interlocking / local backprop (seed-interlocking.md 1.3) and the
// input-only vector-Jacobian product their gradient messages need.
// An aux head g_c reads component c's output h_c and predicts the classes; it is trained on
// CE(g_c(h_c), y) only and never used for inference. Its architecture is a string of
// '_'-separated tokens, as in the reference code:
//   convN  3x3 convolution to N channels, padding 1, with bias, then ReLU
//   bn     turns the preceding conv's ReLU into BatchNorm + ReLU
//   gbpl   global average pool to 1x1, then flatten
//   fc     Linear to the class count; on image features it needs a gbpl first (the reference
//          has no flatten-without-pool); on flat features [n, F] it applies directly
// e.g. "conv128_bn_conv64_bn_gbpl_fc" (the reference example) or "gbpl_fc". "auto" fits the
// features at the cut: the reference example on image features (C,H,W), "fc" on flat ones (F).
// Init: convolutions Kaiming-normal (fan_out, relu) with PyTorch's default uniform bias,
// BN gamma 1 beta 0, Linear PyTorch default.
#pragma once
#include <memory>
#include <string>

#include "nn/Model.h"

namespace sw {

// The architecture "auto" stands for at feature shape `sample` (any other string: itself).
std::string auxArchFor(const std::string& arch, const Shape& sample);
// Builds the head for per-sample feature shape `sample` ((C,H,W) or (F)). Throws ConfigError
// naming `key` for a malformed string or one the feature shape cannot take.
std::unique_ptr<Sequential> buildAuxHead(Backend& be, const std::string& arch, const Shape& sample,
                                         int64_t classes, Rng& rng, const std::string& key);

// While alive, backward passes leave the parameters' gradients untouched (Param::skipGrad).
class SkipParamGrads {
 public:
  explicit SkipParamGrads(std::vector<Param*> ps);
  ~SkipParamGrads();
  SkipParamGrads(const SkipParamGrads&) = delete;
  SkipParamGrads& operator=(const SkipParamGrads&) = delete;

 private:
  std::vector<Param*> ps_;
};

// dx = (d out / d in)^T dy through blocks `r` without parameter gradients, keeping `ctx`
// for later backward passes (a backward consumes the contexts it runs on, so it runs on a
// copy: the copy shares the saved tensors, which no backward writes).
Tensor inputOnlyBackward(Model& m, const Tensor& dy, const Ctx& ctx, BlockRange r);

}  // namespace sw
