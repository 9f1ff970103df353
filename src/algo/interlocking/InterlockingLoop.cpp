// The single-process interlocking step. Gradient bookkeeping: G[(c, j)] = dL_j / dh_c, the
// gradient of loss j w.r.t. component c's output; component c turns G[(c, j)] into
// G[(c-1, j)] for every loss it sends, exactly as the stage schedule's rank c does.
#include "algo/interlocking/InterlockingLoop.h"

#include <cmath>

#include "core/Error.h"
#include "nn/AuxHead.h"

namespace sw {

InterlockingLoop::InterlockingLoop(Model& m, std::vector<BlockRange> components, InterlockRule rule)
    : m_(m), comps_(std::move(components)), rule_(rule), ce_(m.backend()) {
  rule_.components = int(comps_.size());
  rule_.validate("interlocking");
  SW_CHECK(!comps_.empty() && comps_.front().begin == 0 && comps_.back().end == m.numBlocks(),
           "interlocking components must cover the model");
  for (size_t c = 0; c + 1 < comps_.size(); ++c) {
    SW_CHECK(comps_[c].end == comps_[c + 1].begin, "interlocking components must be contiguous");
    SW_CHECK(m.aux(comps_[c].end - 1) != nullptr,
             "component " + std::to_string(c) + " has no auxiliary head on block " + m.blockName(comps_[c].end - 1));
  }
  headLoss_ = [this](const Tensor& logits, const Tensor& labels, Tensor& dlogits) {
    Ctx ctx;
    LossResult r = ce_.forward(logits, labels, ctx);
    dlogits = ce_.backward(ctx);
    return r;
  };
}

LossResult InterlockingLoop::step(const Tensor& x, const Tensor& labels) {
  const LossResult head = forward(x, labels);
  backward();
  return head;
}

LossResult InterlockingLoop::forward(const Tensor& x, const Tensor& labels) {
  const int K = rule_.components;
  ctx_.assign(size_t(K), Ctx{});
  grads_.clear();
  std::vector<Ctx>& ctx = ctx_;
  std::map<std::pair<int, int>, Tensor>& G = grads_;
  messages_.clear();
  // 1. One forward pass (batch-norm statistics update once), each aux head on its component's
  //    detached output.
  Tensor h = x;
  for (int c = 0; c < K; ++c) {
    h = m_.forward(h, ctx[size_t(c)], Mode::kTrain, comps_[size_t(c)]);
    if (!rule_.hasAux(c)) continue;
    Sequential& aux = *m_.aux(comps_[size_t(c)].end - 1);
    Ctx actx, lctx;
    Tensor logits = aux.forward(h, actx, Mode::kTrain);
    const LossResult r = ce_.forward(logits, labels, lctx);
    if (!std::isfinite(r.loss))
      throw NumericError("non-finite auxiliary loss " + std::to_string(r.loss) + " of component " + std::to_string(c) +
                         " (lower optim.lr?)");
    G[{c, c}] = aux.backward(ce_.backward(lctx), actx, InputGrad::kNeeded);
  }
  // 2. The true loss on the head.
  Tensor dlogits;
  const LossResult head = headLoss_(h, labels, dlogits);
  G[{K - 1, K - 1}] = dlogits;
  return head;
}

void InterlockingLoop::backward() {
  const int K = rule_.components;
  std::vector<Ctx>& ctx = ctx_;
  std::map<std::pair<int, int>, Tensor>& G = grads_;
  SW_CHECK(int(ctx.size()) == K, "interlocking: backward() without forward()");
  // 3. Backward passes, head first, in each component's plan order (same order of parameter-
  //    gradient accumulation as on its rank).
  for (int c = K - 1; c >= 0; --c) {
    const std::vector<VjpItem> plan = rule_.plan(c);
    for (size_t k = 0; k < plan.size(); ++k) {
      const VjpItem& it = plan[k];
      const bool lastUse = k + 1 == plan.size();
      auto g = G.find({c, it.loss});
      SW_CHECK(g != G.end(), "interlocking: gradient of loss " + std::to_string(it.loss) + " missing at component " + std::to_string(c));
      Tensor dx;
      if (!it.params) {
        dx = inputOnlyBackward(m_, g->second, ctx[size_t(c)], comps_[size_t(c)]);
      } else {
        Tensor dy = g->second;
        if (it.weight != 1.f) {
          Tensor scaled = m_.backend().empty(dy.shape());
          m_.backend().copy(dy, scaled);
          m_.backend().scale(scaled, it.weight);
          dy = scaled;
        }
        Ctx copy;
        if (!lastUse) copy = ctx[size_t(c)];
        dx = m_.backward(dy, lastUse ? ctx[size_t(c)] : copy, comps_[size_t(c)],
                         it.input ? InputGrad::kNeeded : InputGrad::kSkip);
      }
      if (it.input) {
        G[{c - 1, it.loss}] = dx;
        if (keep_) messages_[{c, it.loss}] = dx;
      }
    }
    ctx[size_t(c)].clear();
    for (auto e = G.begin(); e != G.end();) e = e->first.first == c ? G.erase(e) : std::next(e);
  }
  ctx_.clear();
  grads_.clear();
}

}  // namespace sw
