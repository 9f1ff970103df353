// Losses on the last block's output: softmax cross-entropy (labels int32) and mean squared error.
// Both average over the batch like PyTorch's default reduction='mean'.
#pragma once
#include "nn/Layer.h"

namespace sw {

struct LossResult {
  float loss = 0.f;
  int64_t correct = 0;  // classification only
};

class SoftmaxCrossEntropy {
 public:
  explicit SoftmaxCrossEntropy(Backend& be) : be_(be) {}
  // Saves the probabilities in ctx for backward.
  LossResult forward(const Tensor& logits, const Tensor& labels, Ctx& ctx);
  // d(loss * scale)/dlogits.
  Tensor backward(Ctx& ctx, float scale = 1.f);
  // Rows whose label is among the k largest logits (ties: a logit equal to the label's counts
  // as ranked below it, as torch.topk's). Evaluation only: reads the logits on the host.
  int64_t countTopK(const Tensor& logits, const Tensor& labels, int k) const;

 private:
  Backend& be_;
};

class MseLoss {
 public:
  explicit MseLoss(Backend& be) : be_(be) {}
  float forward(const Tensor& y, const Tensor& target, Ctx& ctx);
  Tensor backward(Ctx& ctx, float scale = 1.f);

 private:
  Backend& be_;
};

}  // namespace sw
