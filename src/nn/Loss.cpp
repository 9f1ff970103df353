// Loss functions.
#include "nn/Loss.h"

#include "core/Error.h"

namespace sw {

LossResult SoftmaxCrossEntropy::forward(const Tensor& logits, const Tensor& labels, Ctx& ctx) {
  if (logits.rank() != 2 || labels.numel() != logits.dim(0))
    throw ShapeError("cross-entropy: logits " + logits.shape().str() + " vs labels " +
                     labels.shape().str());
  Tensor probs = be_.empty(logits.shape());
  LossResult r;
  r.loss = be_.softmaxXentForward(logits, labels, probs);
  r.correct = be_.countCorrect(logits, labels);
  ctx.saved = {probs, labels};
  return r;
}

int64_t SoftmaxCrossEntropy::countTopK(const Tensor& logits, const Tensor& labels, int k) const {
  const Tensor z = be_.toHost(logits), y = be_.toHost(labels);
  const int64_t n = z.dim(0), c = z.dim(1);
  const float* p = z.data();
  const int32_t* lab = y.data<int32_t>();
  int64_t hits = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = p + i * c;
    const float mine = row[lab[i]];
    int64_t above = 0;  // classes strictly more likely than the label
    for (int64_t j = 0; j < c; ++j) above += row[j] > mine;
    hits += above < k;
  }
  return hits;
}

Tensor SoftmaxCrossEntropy::backward(Ctx& ctx, float scale) {
  const Tensor& probs = ctx.saved.at(0);
  Tensor d = be_.empty(probs.shape());
  be_.softmaxXentBackward(probs, ctx.saved.at(1), d, scale / static_cast<float>(probs.dim(0)));
  ctx.clear();
  return d;
}

float MseLoss::forward(const Tensor& y, const Tensor& target, Ctx& ctx) {
  if (y.numel() != target.numel())
    throw ShapeError("mse: output " + y.shape().str() + " vs target " + target.shape().str());
  Tensor diff = be_.empty(y.shape());
  be_.copy(y, diff);
  be_.axpy(-1.f, target, diff);
  ctx.saved = {diff};
  return static_cast<float>(be_.sumSquares(diff) / static_cast<double>(y.numel()));
}

Tensor MseLoss::backward(Ctx& ctx, float scale) {
  Tensor d = ctx.saved.at(0);
  be_.scale(d, 2.f * scale / static_cast<float>(d.numel()));
  ctx.clear();
  return d;
}

}  // namespace sw
