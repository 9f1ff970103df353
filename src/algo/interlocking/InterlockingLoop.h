// Interlocking backprop with every component in one process (seed-interlocking.md 1.1, the
// "one-loop reference", and 3.2 "simulated mode"): one forward pass through all K components,
// every loss, then each component's backward passes in the rule's order (schedule/Interlock.h),
// head first. It computes exactly the operations the stage schedule spreads over K ranks, so a
// run here equals the distributed run bit for bit (deterministic kernels, dropout-free models:
// the dropout stream is per process). The caller applies the optimizer step.
#pragma once
#include <functional>
#include <map>
#include <vector>

#include "nn/Loss.h"
#include "nn/Model.h"
#include "algo/interlocking/Interlock.h"

namespace sw {

class InterlockingLoop {
 public:
  // The head's loss: value (and correct count) of `logits` against `labels`, and dL/dlogits.
  // Defaults to softmax cross-entropy; the auxiliary losses are always cross-entropy.
  using HeadLoss = std::function<LossResult(const Tensor& logits, const Tensor& labels, Tensor& dlogits)>;

  // components: the K block ranges, in order, covering the model; every component but the last
  // needs an auxiliary head on its last block (Model::attachAux).
  InterlockingLoop(Model& m, std::vector<BlockRange> components, InterlockRule rule);
  void setHeadLoss(HeadLoss f) { headLoss_ = std::move(f); }
  // Keep the gradient messages of the last step (messages()) - for tests.
  void keepMessages(bool on) { keep_ = on; }

  // One mini-batch: forward, losses, every component's gradients (accumulated into the
  // parameters' grads; zero them before). Returns the head's loss.
  LossResult step(const Tensor& x, const Tensor& labels);
  // The two halves of step(), as the one-process program's Forward and Backward run them: the
  // forward pass with every loss (kept for backward()), then every component's backward passes.
  LossResult forward(const Tensor& x, const Tensor& labels);
  void backward();

  // (c, j) -> dL_j / d(input of component c): what component c sends to c-1 in the last step.
  const std::map<std::pair<int, int>, Tensor>& messages() const { return messages_; }
  const InterlockRule& rule() const { return rule_; }

 private:
  Model& m_;
  std::vector<BlockRange> comps_;
  InterlockRule rule_;
  SoftmaxCrossEntropy ce_;
  HeadLoss headLoss_;
  bool keep_ = false;
  std::map<std::pair<int, int>, Tensor> messages_;
  // Between forward() and backward(): the components' contexts and G[(c, j)] = dL_j / dh_c.
  std::vector<Ctx> ctx_;
  std::map<std::pair<int, int>, Tensor> grads_;
};

}  // namespace sw
