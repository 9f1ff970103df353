// Interlocking backpropagation, one component per stage (Gomez, Key, Perlin, Gou, Frosst, Dean,
// Gal, "Interlocking Backpropagation: Improving depthwise model-parallelism", JMLR 23(171), 2022;
// rules in seed-interlocking.md 1.1-1.2 and schedule/Interlock.h). Every stage runs each
// mini-batch start to finish before the next, as the reference's one-worker actors do:
//   forward (receiving h_{c-1}, sending h_c; labels are loaded on every stage), then the
//   auxiliary head's loss on the detached output (LocalLoss), then the stage's backward passes
//   in the rule's order - its own loss gradient first and sent at once, received gradients
//   relayed as they arrive, the target loss last as the full backward that fills the
//   parameter gradients - then an optimizer step over the main net and the aux head.
// Nothing is stale and nothing is stashed: every stage steps on the same mini-batch with its
// current weights, so the result does not depend on timing (the single-process loop,
// algo/interlocking/InterlockingLoop.h, computes the same numbers). Overlap across mini-batches comes
// only from the missing backward dependencies: local stages never wait for a later stage,
// pairwise stages wait for the next stage's forward and input-gradient only.
#include "algo/interlocking/InterlockingAlgorithm.h"

namespace sw {
namespace {

class Interlocking : public Schedule {
 public:
  std::string_view name() const override { return "interlocking"; }
  bool flushed() const override { return false; }  // one optimizer step per mini-batch
  Program build(int c, const ScheduleSpec& spec) const override {
    const InterlockParams& ip = spec.params.get<InterlockParams>();
    const InterlockRule rule{.components = spec.stages, .distance = ip.distance, .mode = ip.pairwise};
    const int K = spec.stages;
    Program p;
    for (int mb = 0; mb < spec.microbatches; ++mb) {
      Step f;
      if (c > 0) f.push_back({.op = Op::kRecvAct, .mb = mb, .slot = 0, .peer = c - 1, .tag = kTagAct});
      f.push_back({.op = Op::kLoad, .mb = mb, .slot = 0});
      f.push_back({.op = Op::kForward, .mb = mb, .slot = 0});
      if (c < K - 1) f.push_back({.op = Op::kSendAct, .mb = mb, .slot = 0, .peer = c + 1, .tag = kTagAct});
      // Receives are posted as soon as the forward is done, so the next stage's sends complete
      // without waiting for this stage to reach its backward.
      for (int j : rule.received(c))
        f.push_back({.op = Op::kRecvGrad, .mb = mb, .slot = 0, .peer = c + 1, .tag = kTagLossGrad + (j - c - 1), .loss = j});
      p.push_back(std::move(f));
      if (rule.hasAux(c)) p.push_back({{.op = Op::kLocalLoss, .mb = mb, .slot = 0}});
      for (const VjpItem& it : rule.plan(c)) {
        Step b{{.op = it.params ? Op::kBackward : Op::kInputGrad, .mb = mb, .slot = 0, .loss = it.loss}};
        if (it.input)
          b.push_back({.op = Op::kSendGrad, .mb = mb, .slot = 0, .peer = c - 1, .tag = kTagLossGrad + (it.loss - c), .loss = it.loss});
        p.push_back(std::move(b));
      }
      p.push_back(detail::updateStep(spec));
    }
    return p;
  }
};

}  // namespace

std::unique_ptr<Schedule> makeInterlockingSchedule() { return std::make_unique<Interlocking>(); }

}  // namespace sw
