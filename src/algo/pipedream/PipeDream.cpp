// PipeDream (Narayanan et al., SOSP 2019), asynchronous 1F1B: every micro-batch is a minibatch
// with its own optimizer step, applied by each stage right after that micro-batch's backward;
// there is no flush inside a round. Weight stashing: a micro-batch's backward uses the weights
// its forward used (StashWeights keeps the version; Forward/Backward name it). Vertical sync
// (section 3.3): every stage uses the version stage 0 used for that micro-batch, so one
// micro-batch sees one consistent model across the pipeline. A round ends drained so it can be
// checkpointed (`pipedream.drain_every` micro-batches per round). With stash = false a backward
// reads the current weights (the SpecTrain system's "vanilla model parallel", MP-nostash).
#include <set>

#include "algo/pipedream/PipeDreamAlgorithm.h"
#include "algo/backprop/OneFOneBOrder.h"

namespace sw {
namespace {

class PipeDream : public Schedule {
 public:
  std::string_view name() const override { return "pipedream"; }
  bool flushed() const override { return false; }
  Program build(int stage, const ScheduleSpec& spec) const override {
    const int S = spec.stages, M = spec.microbatches;
    const PipeDreamParams& pd = spec.params.get<PipeDreamParams>();
    const int slots = std::min(S - stage, M);
    // Version stage 0 used for each micro-batch's forward (vertical sync).
    std::vector<int> v0(M, 0);
    {
      int c = 0;
      for (const OrderItem& it : oneFOneBOrder(0, S, M)) {
        if (it.forward) v0[it.mb] = c;
        else ++c;
      }
    }
    // Desired version of every forward/backward on this stage, and which versions must be
    // stashed because they are used after the weights moved on.
    const auto order = oneFOneBOrder(stage, S, M);
    std::vector<int> fwdVersion(M, 0), desired(order.size());
    std::set<int> needed;
    int c = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      const OrderItem& it = order[i];
      if (it.forward) fwdVersion[it.mb] = pd.verticalSync ? v0[it.mb] : c;
      // Without stashing a backward reads whatever weights are current (spec's "vanilla").
      desired[i] = (pd.stash || it.forward) ? fwdVersion[it.mb] : c;
      if (desired[i] != c) needed.insert(desired[i]);
      if (!it.forward) ++c;
    }
    Program p;
    if (needed.count(0)) p.push_back({{.op = Op::kStashWeights, .version = 0}});
    c = 0;
    for (size_t i = 0; i < order.size(); ++i) {
      const OrderItem& it = order[i];
      const int slot = it.mb % slots;
      if (it.forward) {
        p.push_back(detail::forwardStep(stage, S, it.mb, slot, desired[i]));
      } else {
        Step s = detail::backwardStep(stage, S, it.mb, slot, desired[i]);
        Step u = detail::updateStep(spec);
        s.insert(s.end(), u.begin(), u.end());
        ++c;
        if (needed.count(c)) s.push_back({.op = Op::kStashWeights, .version = c});
        p.push_back(std::move(s));
      }
    }
    return p;
  }
};

}  // namespace

std::unique_ptr<Schedule> makePipeDreamSchedule() { return std::make_unique<PipeDream>(); }

}  // namespace sw
