// Difference target propagation with backprop-like targets, "L-DRL" (Ernoult et al., ICML 2022,
// arXiv 2201.13415; spec ../shared/spec/seed-dtp.md). The three pieces of one training step:
//   forwardPass()     F on the batch, keeping every block's output h_i, its pool's argmax
//                     ("clean") indices and its context for the local backward (spec 2.1.1, 2.2.1:
//                     F is frozen during the feedback phase, so one pass serves both phases);
//   trainFeedback()   K_i iterations of the local difference reconstruction loss on G_i (2.1);
//   computeTargets(), localLosses()
//                     first target t_L = z - beta (softmax(z) - e_y), difference correction
//                     t_{i-1} = h_{i-1} + G_i(t_i) - G_i(h_i), and the layer-local losses
//                     L_i = mean_b 1/2 |h_i - t_i|^2, backpropagated into F_i only (2.2).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "algo/dtp/FeedbackNet.h"
#include "algo/dtp/Noise.h"
#include "nn/Model.h"
#include "optim/Optimizer.h"

namespace sw {
struct DtpSection;
}

namespace sw::dtp {

// Which pool indices r^ = G(y + dy) uses in L-DRL. kClean: F_i's clean indices, as the spec and
// amoudgl/distributed-dtp (which re-runs F_i(x) to restore them). kNoisy: the indices of this
// iteration's noisy forward F_i(x + dx), as ernoult/scalingDTP's feedback_loss.py at HEAD does
// (its one-slot "magic bridge" still holds them when r^ is computed).
enum class RHatIndices { kClean, kNoisy };

// Hyperparameters resolved per feedback block index 0..L (index 0, G_0, is never trained).
struct Hyper {
  float beta = 0.7f;
  std::vector<int> iterations;   // K_i
  std::vector<float> sigma, lr;  // noise scale and SGD learning rate of G_i
  float momentum = 0.9f;
  int samples = 1;               // noise samples per iteration
  RHatIndices rhat = RHatIndices::kClean;
  uint64_t seed = 0;
  // The config lists have L entries ordered input -> output: entry j belongs to G_{j+1}
  // (spec 1.2, "a common source of bugs"). Throws ConfigError naming the key on a length mismatch.
  static Hyper fromConfig(const DtpSection& s, int blocks, uint64_t seed);
};

// One batch's clean forward pass.
struct ForwardPass {
  Tensor x, labels;
  std::vector<Tensor> h;    // h[i] = F_i(h[i-1]), h[-1] = x; h[L] = logits z
  std::vector<Tensor> idx;  // clean pool indices of F_i (undefined for the head)
  Ctx ctx;                  // ctx.child(i): F_i's saved state for its local backward
  const Tensor& input(int i) const { return i == 0 ? x : h[size_t(i - 1)]; }
};

void forwardPass(Model& f, const std::vector<ForwardBlockInfo>& info, const Tensor& x, const Tensor& labels,
                 ForwardPass& out);

// One L-DRL evaluation with explicit noise (spec 2.1.2): x = F_i's input, y = its output, idx its
// clean indices, dx/dy the noise tensors. Returns
//   loss = mean_b[ -2 sum(dx * (r~ - r)) + sum((r^ - r)^2) ]
// with r = G(y; idx), r~ = G(F_i(x + dx); noisy indices), r^ = G(y + dy; idx). When `grad` is
// kAccumulate/kWrite it also adds scale * dloss/dW into G's weight gradient. The gradient uses the
// upstream-gradient form with the differences folded in: d<apply(a), u>/dW is linear in a, so the
// three passes of the spec become two, on a~ - a (upstream -2 dx / B) and a^ - a (upstream
// 2 (r^ - r) / B). The bias cancels everywhere and gets no gradient.
enum class GradMode { kNone, kWrite, kAccumulate };
double drlLoss(FeedbackBlock& g, Sequential& f, const ForwardBlockInfo& fi, const Tensor& x, const Tensor& y,
               const Tensor& idx, const Tensor& dx, const Tensor& dy, GradMode grad, float scale = 1.f,
               RHatIndices rhat = RHatIndices::kClean);

struct FeedbackStats {
  double firstLoss = 0, lastLoss = 0, meanLoss = 0;  // per-iteration L-DRL loss (mean over samples)
  int iterations = 0;
};

// Where the noise comes from: fillNormal() by default; tests replay tensors exported from the
// PyTorch reference. Fills the host tensor `out` with sigma * N(0, 1) for `key`.
using NoiseSource = std::function<void(const NoiseKey& key, float sigma, Tensor& out)>;

// K_i iterations of L-DRL on G_i with momentum SGD (`opt` holds G_i's weight only), noise keyed on
// (seed, step, i, k, s, dx|dy). F is only read.
FeedbackStats trainFeedback(FeedbackBlock& g, Sequential& f, const ForwardBlockInfo& fi, const ForwardPass& fp,
                            int layer, const Hyper& hp, Optimizer& opt, int64_t step,
                            const NoiseSource& noise = nullptr);

// Targets t_0..t_L for the batch (spec 2.2.2-3). Also returns the batch's mean cross-entropy of z
// and the number of correct predictions (training metrics, taken before the update).
struct Targets {
  std::vector<Tensor> t;
  double ce = 0;
  int64_t correct = 0;
};
Targets computeTargets(Model& f, FeedbackNet& g, const ForwardPass& fp, float beta);

// L_i = mean_b 1/2 sum (h_i - t_i)^2 for every block, backpropagated into F_i's parameters only
// (each block's input is detached). Writes fresh gradients; returns L_0..L_L.
std::vector<double> localLosses(Model& f, ForwardPass& fp, const Targets& t);

// Diagnostic (the paper's DTP-vs-BP gradient comparison): with the DTP gradients of the forward
// parameters in place (after localLosses), computes the backprop gradient of the batch-mean
// cross-entropy on (x, labels) times beta (what DTP's output layer gets exactly) and returns, per
// block F_i (all its parameters as one vector), the angle in degrees between the two (90 when
// either is zero) and the norm ratio |g_dtp| / |beta g_bp| (the block's effective learning rate
// relative to backprop with lr x beta). The DTP gradients are restored afterwards, so the
// following optimizer step is unchanged.
struct BpComparison {
  std::vector<double> angle, normRatio;
};
BpComparison compareWithBackprop(Model& f, const Tensor& x, const Tensor& labels, float beta);

// Cost of one L-DRL iteration of G_i relative to others (MACs of F_i's forward on the noisy input
// plus two G applies and two weight gradients), used to balance layers over ranks.
double feedbackCost(Model& f, FeedbackNet& g, int layer, const Hyper& hp);

}  // namespace sw::dtp
