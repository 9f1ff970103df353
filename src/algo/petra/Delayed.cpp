// The delayed-gradient stage pipeline of the PETRA system (seed-petra.md 1.2-1.4, 4.5), one
// program per stage in lock-step ticks. At tick t stage j runs the forward of micro-batch t - j
// and the backward of micro-batch t - 2(J-1) + j (the last stage, the head, runs forward, loss
// and backward of t - (J-1) in one tick: no delay), then steps its optimizer when it has
// accumulated accumSteps backwards. Stage j's gradients are therefore 2(J-1-j) ticks stale.
// Nothing is flushed inside a round; a round ends drained (every micro-batch gets its backward)
// so evaluation and checkpoints see one consistent state.
//
// What a stage keeps between a micro-batch's forward and backward is the executor's business
// (context, input, or nothing for reversible blocks); the schedule adds what it implies for
// messages and weights: with stashParams a backward names the version its forward used, and a
// stage that rebuilds its input from its output (reconFrom[j]) receives that output, as stage
// j+1 knows it, on kTagRecon just ahead of the gradient.
#include <algorithm>
#include <set>

#include "core/Error.h"
#include "algo/petra/PetraAlgorithm.h"

namespace sw {
namespace {

class Delayed : public Schedule {
 public:
  std::string_view name() const override { return "petra"; }
  bool flushed() const override { return false; }
  Program build(int stage, const ScheduleSpec& spec) const override {
    const DelayedParams& dp = spec.params.get<DelayedParams>();
    const int J = spec.stages, M = spec.microbatches, k = std::max(1, dp.accumSteps);
    const int j = stage;
    const bool last = j == J - 1;
    const int delay = 2 * (J - 1 - j);
    const int slots = std::max(1, std::min(delay + 1, M));
    auto recon = [&](int s) { return s >= 0 && s < J - 1 && s < int(dp.reconFrom.size()) && dp.reconFrom[s]; };
    const int ticks = M + 2 * (J - 1);
    // Pass 1: weight versions. fwd[m] = updates applied before m's forward; which versions a
    // backward needs after the weights moved on (stashed right after the update making them).
    std::vector<int> fwd(M, 0);
    std::set<int> needed;
    {
      int c = 0, count = 0;
      for (int t = 0; t < ticks; ++t) {
        const int mf = t - j, mb = last ? mf : t - 2 * (J - 1) + j;
        if (mf >= 0 && mf < M) fwd[mf] = c;
        if (mb >= 0 && mb < M) {
          if (dp.stashParams && fwd[mb] != c) needed.insert(fwd[mb]);
          if (++count == k) ++c, count = 0;
        }
      }
    }
    auto backward = [&](int m, int c) {
      Step s;
      if (!last && recon(j)) s.push_back({.op = Op::kRecvGrad, .mb = m, .slot = m % slots, .peer = j + 1, .tag = kTagRecon});
      if (!last) s.push_back({.op = Op::kRecvGrad, .mb = m, .slot = m % slots, .peer = j + 1, .tag = kTagGrad});
      const int v = dp.stashParams && fwd[m] != c ? fwd[m] : -1;
      s.push_back({.op = Op::kBackward, .mb = m, .slot = m % slots, .version = v});
      if (j > 0 && recon(j - 1)) s.push_back({.op = Op::kSendGrad, .mb = m, .slot = m % slots, .peer = j - 1, .tag = kTagRecon});
      if (j > 0) s.push_back({.op = Op::kSendGrad, .mb = m, .slot = m % slots, .peer = j - 1, .tag = kTagGrad});
      return s;
    };
    Program p;
    if (needed.count(0)) p.push_back({{.op = Op::kStashWeights, .version = 0}});
    int c = 0, count = 0;
    for (int t = 0; t < ticks; ++t) {
      const int mf = t - j, mb = last ? mf : t - 2 * (J - 1) + j;
      if (mf >= 0 && mf < M) p.push_back(detail::forwardStep(j, J, mf, mf % slots));
      if (mb >= 0 && mb < M) {
        Step s = backward(mb, c);
        if (++count == k) {
          Step u = detail::updateStep(spec);
          u.back().mb = count;
          s.insert(s.end(), u.begin(), u.end());
          ++c;
          count = 0;
          if (needed.count(c)) s.push_back({.op = Op::kStashWeights, .version = c});
        }
        p.push_back(std::move(s));
      }
    }
    if (count > 0) {  // the round's last, partial accumulation group
      Step u = detail::updateStep(spec);
      u.back().mb = count;
      p.push_back(std::move(u));
    }
    return p;
  }
};

}  // namespace

std::unique_ptr<Schedule> makeDelayedSchedule() { return std::make_unique<Delayed>(); }

}  // namespace sw
