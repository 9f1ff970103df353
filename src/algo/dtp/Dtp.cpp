// L-DRL feedback training, target propagation and layer-local losses (see Dtp.h; equation
// references are to ../shared/spec/seed-dtp.md). Every loss below sums over the features of a
// sample and averages over the batch (pitfall 3: an element mean would shrink the effective
// learning rate by up to 32,768x).
#include "algo/dtp/Dtp.h"

#include <cmath>

#include "config/TrainConfig.h"
#include "core/Error.h"
#include "nn/Loss.h"
#include "nn/Pool.h"

namespace sw::dtp {
namespace {

Tensor sum(Backend& be, const Tensor& a, const Tensor& b) {
  Tensor out = be.empty(a.shape());
  be.add(a, b, out);
  return out;
}

// The L-DRL loss and gradient given G's parameter-free part on the clean output, aClean = pre(y).
double drlLossFrom(FeedbackBlock& g, Sequential& f, const ForwardBlockInfo& fi, const Tensor& aClean,
                   const Tensor& x, const Tensor& y, const Tensor& idx, const Tensor& dx, const Tensor& dy,
                   GradMode grad, float scale, RHatIndices rhat) {
  Backend& be = g.backend();
  // r~: F_i on the noisy input, then G with the *noisy* pool indices (spec 2.1.2b, pitfall 2).
  Ctx c;
  const Tensor yNoisy = f.forward(sum(be, x, dx), c, Mode::kTrain);
  const Tensor idxNoisy = fi.kind == BlockKind::kConvPool ? MaxPool2d::indices(c.child(fi.poolLayer)) : Tensor();
  Tensor dA = g.pre(yNoisy, idxNoisy);  // a~ - a
  be.axpy(-1.f, aClean, dA);
  // r^: G on the noisy output with the *clean* indices (2.1.2c), or the noisy ones (RHatIndices).
  Tensor dB = g.pre(sum(be, y, dy), rhat == RHatIndices::kClean ? idx : idxNoisy);  // a^ - a
  c.clear();
  be.axpy(-1.f, aClean, dB);
  const Tensor rTilde = g.apply(dA, Bias::kOmit);  // r~ - r
  Tensor rHat = g.apply(dB, Bias::kOmit);          // r^ - r
  if (grad == GradMode::kNone) return be.dtpDrlLoss(dx, rTilde, rHat, scale, nullptr, nullptr);
  // Upstream gradients -2 scale / B dx (into up) and 2 scale / B (r^ - r) (into rHat itself).
  Tensor up = be.empty(dx.shape());
  const double loss = be.dtpDrlLoss(dx, rTilde, rHat, scale, &up, &rHat);
  g.weightGrad(dA, up, grad == GradMode::kWrite ? Accumulate::kNo : Accumulate::kYes);
  g.weightGrad(dB, rHat, Accumulate::kYes);
  return loss;
}

}  // namespace

Hyper Hyper::fromConfig(const DtpSection& s, int blocks, uint64_t seed) {
  const size_t L = size_t(blocks - 1);
  auto need = [&](size_t n, const char* key) {
    if (n != L)
      throw ConfigError(std::string(key) + ": needs " + std::to_string(L) +
                        " values (one per trainable feedback block G_1..G_" + std::to_string(L) +
                        ", listed input -> output), got " + std::to_string(n));
  };
  need(s.feedbackIterations.size(), "dtp.feedback_iterations");
  need(s.feedbackNoise.size(), "dtp.feedback_noise");
  need(s.feedbackLr.size(), "dtp.feedback_lr");
  Hyper h;
  h.beta = s.beta;
  h.momentum = s.feedbackMomentum;
  h.samples = s.feedbackSamples;
  h.rhat = s.rhatIndices == "noisy" ? RHatIndices::kNoisy : RHatIndices::kClean;
  h.seed = seed;
  // Entry j of the lists belongs to G_{j+1}; G_0 is never trained.
  h.iterations.assign(L + 1, 0);
  h.sigma.assign(L + 1, 0.f);
  h.lr.assign(L + 1, 0.f);
  for (size_t j = 0; j < L; ++j) {
    h.iterations[j + 1] = int(s.feedbackIterations[j]);
    h.sigma[j + 1] = s.feedbackNoise[j];
    h.lr[j + 1] = s.feedbackLr[j];
  }
  return h;
}

void forwardPass(Model& f, const std::vector<ForwardBlockInfo>& info, const Tensor& x, const Tensor& labels,
                 ForwardPass& out) {
  const size_t nb = f.numBlocks();
  out.x = x;
  out.labels = labels;
  out.ctx.clear();
  out.h.assign(nb, Tensor());
  out.idx.assign(nb, Tensor());
  Tensor cur = x;
  for (size_t i = 0; i < nb; ++i) {
    cur = f.block(i).forward(cur, out.ctx.child(i), Mode::kTrain);
    out.h[i] = cur;
    // Holding the index tensor keeps it alive after the block's backward clears its context.
    if (info[i].kind == BlockKind::kConvPool)
      out.idx[i] = MaxPool2d::indices(out.ctx.child(i).child(info[i].poolLayer));
  }
}

double drlLoss(FeedbackBlock& g, Sequential& f, const ForwardBlockInfo& fi, const Tensor& x, const Tensor& y,
               const Tensor& idx, const Tensor& dx, const Tensor& dy, GradMode grad, float scale, RHatIndices rhat) {
  return drlLossFrom(g, f, fi, g.pre(y, idx), x, y, idx, dx, dy, grad, scale, rhat);
}

FeedbackStats trainFeedback(FeedbackBlock& g, Sequential& f, const ForwardBlockInfo& fi, const ForwardPass& fp,
                            int layer, const Hyper& hp, Optimizer& opt, int64_t step, const NoiseSource& noise) {
  Backend& be = g.backend();
  const Tensor& x = fp.input(layer);
  const Tensor& y = fp.h[size_t(layer)];
  const Tensor& idx = fp.idx[size_t(layer)];
  const Tensor aClean = g.pre(y, idx);  // G's parameter-free part on y: fixed for the whole step
  Tensor dxHost = Tensor::empty(x.shape()), dyHost = Tensor::empty(y.shape());
  const int K = hp.iterations[size_t(layer)], S = hp.samples;
  FeedbackStats st;
  st.iterations = K;
  Param& w = g.weight();
  for (int k = 0; k < K; ++k) {
    double loss = 0;
    for (int s = 0; s < S; ++s) {
      NoiseKey key{.seed = hp.seed, .step = step, .layer = layer, .iteration = k, .sample = s};
      const float sigma = hp.sigma[size_t(layer)];
      key.which = NoiseTensor::kDx;  // drawn first, as in the reference
      noise ? noise(key, sigma, dxHost) : fillNormal(dxHost, sigma, key);
      key.which = NoiseTensor::kDy;
      noise ? noise(key, sigma, dyHost) : fillNormal(dyHost, sigma, key);
      loss += drlLossFrom(g, f, fi, aClean, x, y, idx, be.fromHost(dxHost), be.fromHost(dyHost),
                          s == 0 ? GradMode::kWrite : GradMode::kAccumulate, 1.f / float(S), hp.rhat);
    }
    loss /= S;
    if (!std::isfinite(loss))
      throw NumericError("L-DRL loss of feedback block G_" + std::to_string(layer) + " is " + std::to_string(loss) +
                         " at step " + std::to_string(step) + " iteration " + std::to_string(k) +
                         " (lower dtp.feedback_lr or dtp.feedback_noise for this layer)");
    w.gradFresh = false;
    opt.step(hp.lr[size_t(layer)]);
    w.gradFresh = true;
    if (k == 0) st.firstLoss = loss;
    st.lastLoss = loss;
    st.meanLoss += loss / K;
  }
  return st;
}

Targets computeTargets(Model& f, FeedbackNet& g, const ForwardPass& fp, float beta) {
  Backend& be = f.backend();
  const size_t L = f.numBlocks() - 1;
  Targets out;
  out.t.assign(L + 1, Tensor());
  const Tensor& z = fp.h[L];
  // t_L = z - beta (p - e_y): a step along the per-sample gradient of the *summed* cross-entropy.
  out.t[L] = be.empty(z.shape());
  const LogitStats st = be.dtpFirstTarget(z, fp.labels, beta, out.t[L]);
  out.ce = st.ce;
  out.correct = st.correct;
  for (size_t i = L; i >= 1; --i) {
    // Difference correction with the clean indices of F_i for both calls (the bias cancels).
    FeedbackBlock& gi = g.block(int(i));
    const Tensor gt = gi.forward(out.t[i], fp.idx[i]);
    const Tensor gh = gi.forward(fp.h[i], fp.idx[i]);
    out.t[i - 1] = be.empty(fp.h[i - 1].shape());
    be.dtpDifferenceTarget(fp.h[i - 1], gt, gh, out.t[i - 1]);
  }
  return out;
}

std::vector<double> localLosses(Model& f, ForwardPass& fp, const Targets& t) {
  Backend& be = f.backend();
  const size_t nb = f.numBlocks();
  std::vector<double> losses(nb, 0.0);
  f.zeroGrad();
  for (size_t i = 0; i < nb; ++i) {
    // dL_i/dh_i = (h_i - t_i) / B; the block's input is detached, so only F_i's parameters learn.
    Tensor d = be.empty(fp.h[i].shape());
    losses[i] = be.dtpLocalLoss(fp.h[i], t.t[i], d);
    f.block(i).backward(d, fp.ctx.child(i), InputGrad::kSkip);
  }
  return losses;
}

BpComparison compareWithBackprop(Model& f, const Tensor& x, const Tensor& labels, float beta) {
  auto dot = [](const Tensor& a, const Tensor& b) {  // host tensors, double accumulation
    double s = 0;
    for (int64_t i = 0; i < a.numel(); ++i) s += double(a.data()[i]) * b.data()[i];
    return s;
  };
  Backend& be = f.backend();
  const size_t nb = f.numBlocks();
  std::vector<std::vector<Tensor>> dtpGrad(nb);
  for (size_t i = 0; i < nb; ++i)
    for (Param* p : f.params(BlockRange{i, i + 1})) {
      Tensor copy = Tensor::empty(p->grad.shape());  // toHost may alias host memory: copy
      be.copy(p->grad, copy);
      dtpGrad[i].push_back(copy);
    }
  Ctx ctx, lossCtx;
  SoftmaxCrossEntropy ce(be);
  ce.forward(f.forward(x, ctx, Mode::kTrain), labels, lossCtx);
  f.zeroGrad();
  f.backward(ce.backward(lossCtx, beta), ctx);  // beta x the batch-mean cross-entropy's gradient
  BpComparison out;
  out.angle.assign(nb, 0.0);
  out.normRatio.assign(nb, 0.0);
  for (size_t i = 0; i < nb; ++i) {
    double ab = 0, aa = 0, bb = 0;
    const auto ps = f.params(BlockRange{i, i + 1});
    for (size_t k = 0; k < ps.size(); ++k) {
      const Tensor bp = be.toHost(ps[k]->grad);
      ab += dot(dtpGrad[i][k], bp);
      aa += dot(dtpGrad[i][k], dtpGrad[i][k]);
      bb += dot(bp, bp);
      be.copy(dtpGrad[i][k], ps[k]->grad);  // restore the DTP gradient
    }
    out.angle[i] = angleDegrees(ab, aa, bb);
    if (bb > 0) out.normRatio[i] = std::sqrt(aa / bb);
  }
  return out;
}

double feedbackCost(Model& f, FeedbackNet& g, int layer, const Hyper& hp) {
  const double perIter = f.blockMacs(size_t(layer), 1) + 4.0 * g.block(layer).macs(1);
  return perIter * hp.iterations[size_t(layer)] * hp.samples;
}

}  // namespace sw::dtp
