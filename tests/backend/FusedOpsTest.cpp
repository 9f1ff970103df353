// The CPU backend's fused training ops (backend/Backend.h: larsUpdate, predictWeights, coupling,
// splitChannels with one half, the dtp* losses and targets), the reference of the CUDA kernels:
//   - against plain scalar loops written from the formulas (float ops where the formula is one
//     float op, else double with a stated tolerance);
//   - bit for bit against the chains of elementwise backend ops the optimizer, the reversible
//     coupling and DTP ran before the fused ops existed, so CPU training results did not change;
//   - the DTP losses give the same bits on 1 and 3 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "TestData.h"
#include "backend/Backend.h"
#include "core/Error.h"

namespace sw {
namespace {

using testdata::labelsFor;
using testdata::randn;

Backend& cpu() {
  static std::unique_ptr<Backend> be = makeCpuBackend(2);
  return *be;
}

::testing::AssertionResult sameBits(const Tensor& a, const Tensor& b) {
  if (a.numel() != b.numel()) return ::testing::AssertionFailure() << a.shape().str() << " vs " << b.shape().str();
  for (int64_t i = 0; i < a.numel(); ++i)
    if (std::memcmp(a.data() + i, b.data() + i, sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": " << a.data()[i] << " vs " << b.data()[i];
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult near(const Tensor& got, const std::vector<double>& want, double rtol) {
  double maxw = 0;
  for (double w : want) maxw = std::max(maxw, std::abs(w));
  for (int64_t i = 0; i < got.numel(); ++i)
    if (!(std::abs(got.data()[i] - want[size_t(i)]) <= rtol * maxw + 1e-7))
      return ::testing::AssertionFailure() << "element " << i << ": " << got.data()[i] << " vs " << want[size_t(i)];
  return ::testing::AssertionSuccess();
}

TEST(FusedOps, LarsMatchesTheFormulaAndTheOldChainOfOps) {
  Backend& be = cpu();
  const Shape s{17, 15};
  const Tensor p0 = randn(s, 1), g0 = randn(s, 2, 0.1f);
  for (float wd : {0.f, 1e-3f})
    for (bool nesterov : {false, true}) {
      SCOPED_TRACE("wd " + std::to_string(wd) + " nesterov " + std::to_string(nesterov));
      const LarsOpts o{.sgd = {.lr = 0.5f, .momentum = 0.9f, .dampening = 0.f, .weightDecay = wd, .nesterov = nesterov},
                       .trust = 0.02f, .eps = 1e-8f};
      Tensor p = p0.clone(), buf = Tensor::zeros(s), pc = p0.clone(), bc = Tensor::zeros(s);
      std::vector<float> ps(p0.data(), p0.data() + p0.numel()), bs(size_t(s.numel()), 0.f);
      for (int step = 0; step < 3; ++step) {
        Tensor g = g0.clone(), gc = g0.clone();
        be.larsUpdate(p, g, buf, o, step == 0);
        // The chain Optimizer::step ran before: norms, axpy + scale, SGD without decay.
        const double pn = std::sqrt(be.sumSquares(pc)), gn = std::sqrt(be.sumSquares(gc));
        const double local = o.trust * pn / (gn + wd * pn + o.eps);
        const float a = static_cast<float>(std::min(local / o.sgd.lr, 1.0));
        if (wd != 0.f) be.axpy(wd, pc, gc);
        be.scale(gc, a);
        SgdOpts so = o.sgd;
        so.weightDecay = 0.f;
        be.sgdUpdate(pc, gc, bc, so, step == 0);
        EXPECT_TRUE(sameBits(g, gc)) << "clipped gradient, step " << step;
        EXPECT_TRUE(sameBits(p, pc)) << "weights, step " << step;
        // Scalar reference: double norms, float update.
        double pss = 0, gss = 0;
        for (int64_t i = 0; i < s.numel(); ++i) pss += double(ps[size_t(i)]) * ps[size_t(i)], gss += double(g0.data()[i]) * g0.data()[i];
        const double ratio = std::min(0.02 * std::sqrt(pss) / (std::sqrt(gss) + wd * std::sqrt(pss) + 1e-8) / 0.5, 1.0);
        std::vector<double> want(ps.size());
        for (size_t i = 0; i < ps.size(); ++i) {
          const float d = float((g0.data()[i] + wd * ps[i]) * ratio);
          bs[i] = step == 0 ? d : 0.9f * bs[i] + d;
          ps[i] -= 0.5f * (nesterov ? d + 0.9f * bs[i] : bs[i]);
          want[i] = ps[i];
        }
        EXPECT_TRUE(near(p, want, 1e-5)) << "scalar reference, step " << step;
      }
    }
}

TEST(FusedOps, LarsLeavesAZeroGradientUnclipped) {
  Backend& be = cpu();
  const Shape s{8};
  Tensor p = randn(s, 3), g = Tensor::zeros(s), buf = Tensor::zeros(s);
  const Tensor before = p.clone();
  be.larsUpdate(p, g, buf, LarsOpts{.sgd = {.lr = 0.1f, .momentum = 0.9f, .weightDecay = 0.1f}}, true);
  EXPECT_TRUE(sameBits(p, before)) << "no gradient, no decay: the weights stay";
  EXPECT_TRUE(sameBits(g, Tensor::zeros(s)));
  Tensor badGrad = Tensor::zeros(Shape{9});
  EXPECT_THROW(be.larsUpdate(p, badGrad, buf, LarsOpts{}, true), ShapeError);
}

TEST(FusedOps, PredictWeightsMatchesTheFormulaAndTheOldChainOfOps) {
  Backend& be = cpu();
  const Shape s{1000};
  const Tensor w = randn(s, 4), buf = randn(s, 5, 0.1f), lastD = randn(s, 6, 0.1f);
  const float m = 0.9f, lr = 0.05f, steps = 3.f;
  for (int withBuf = 0; withBuf < 2; ++withBuf)
    for (int withD = 0; withD < 2; ++withD) {
      SCOPED_TRACE("buf " + std::to_string(withBuf) + " lastD " + std::to_string(withD));
      const Tensor b = withBuf ? buf : Tensor(), d = withD ? lastD : Tensor();
      Tensor out = Tensor::empty(s);
      be.predictWeights(w, b, d, m, lr * steps, out);
      // The chain Optimizer::predict ran before.
      Tensor dir = Tensor::empty(s), old = w.clone();
      withD ? be.copy(lastD, dir) : be.fill(dir, 0.f);
      if (withBuf) be.axpy(m, buf, dir);
      be.axpy(-lr * steps, dir, old);
      EXPECT_TRUE(sameBits(out, old));
      std::vector<double> want(size_t(s.numel()));
      for (size_t i = 0; i < want.size(); ++i)
        want[i] = double(w.data()[i]) - double(lr * steps) * ((withBuf ? m * double(buf.data()[i]) : 0.0) +
                                                              (withD ? double(lastD.data()[i]) : 0.0));
      EXPECT_TRUE(near(out, want, 1e-6));
    }
}

TEST(FusedOps, CouplingMatchesTheFormulaAndTheOldChainOfOps) {
  Backend& be = cpu();
  const Shape pair{3, 8, 5, 4}, halfShape{3, 4, 5, 4};
  const Tensor x = randn(pair, 7), f = randn(halfShape, 8);
  Tensor y = Tensor::empty(pair), back = Tensor::empty(pair);
  be.coupling(Coupling::kForward, x, f, y);
  be.coupling(Coupling::kInverse, y, f, back);
  // The chain RevCoupling ran before: split, axpy (+1 forward, -1 inverse), concat.
  Tensor a = Tensor::empty(halfShape), at = Tensor::empty(halfShape), oldY = Tensor::empty(pair);
  be.splitChannels(x, a, at);
  be.axpy(1.f, f, at);
  be.concatChannels(at, a, oldY);
  EXPECT_TRUE(sameBits(y, oldY)) << "forward";
  Tensor yy = Tensor::empty(halfShape), ya = Tensor::empty(halfShape), oldX = Tensor::empty(pair);
  be.splitChannels(y, yy, ya);
  be.axpy(-1.f, f, yy);
  be.concatChannels(ya, yy, oldX);
  EXPECT_TRUE(sameBits(back, oldX)) << "inverse";
  // Scalar: per sample, out = (x2 + f, x1) and its inverse; one float op per element.
  const int64_t half = 4 * 5 * 4;
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t j = 0; j < half; ++j) {
      const float x1 = x.data()[n * 2 * half + j], x2 = x.data()[n * 2 * half + half + j], fj = f.data()[n * half + j];
      ASSERT_EQ(y.data()[n * 2 * half + j], x2 + fj);
      ASSERT_EQ(y.data()[n * 2 * half + half + j], x1);
      ASSERT_EQ(back.data()[n * 2 * half + j], x1) << "the x half comes back exactly";
      ASSERT_NEAR(back.data()[n * 2 * half + half + j], x2, 1e-6f);
    }
  Tensor wrong = Tensor::empty(pair);
  EXPECT_THROW(be.coupling(Coupling::kForward, x, Tensor::empty(pair), wrong), ShapeError);
}

TEST(FusedOps, SplitChannelsWritesOnlyTheDefinedHalf) {
  Backend& be = cpu();
  const Shape whole{2, 5, 3, 3}, sa{2, 2, 3, 3}, sb{2, 3, 3, 3};
  const Tensor x = randn(whole, 9);
  Tensor a = Tensor::empty(sa), b = Tensor::empty(sb), a1 = Tensor::empty(sa), b1 = Tensor::empty(sb), none;
  be.splitChannels(x, a, b);
  be.splitChannels(x, a1, none);
  be.splitChannels(x, none, b1);
  EXPECT_TRUE(sameBits(a1, a));
  EXPECT_TRUE(sameBits(b1, b));
  EXPECT_THROW(be.splitChannels(x, none, none), ShapeError);
  Tensor tooWide = Tensor::empty(Shape{2, 6, 3, 3});
  EXPECT_THROW(be.splitChannels(x, tooWide, none), ShapeError);
  EXPECT_THROW(be.concatChannels(a, none, const_cast<Tensor&>(x)), Error);
}

// The loss of a fixed-order double sum over chunks: the scalar double reference agrees to a few
// ulp of double; the bits do not depend on the thread count.
TEST(FusedOps, DrlLossMatchesTheFormulaOnAnyThreadCount) {
  Backend& be = cpu();
  const Shape s{16, 8, 32, 32};  // 131072 elements: the chunks run in parallel
  const Tensor dx = randn(s, 10, 0.1f), dT = randn(s, 11), dH = randn(s, 12);
  const float scale = 0.5f;
  const int64_t B = s[0];
  double cross = 0, sq = 0;
  for (int64_t i = 0; i < s.numel(); ++i) cross += double(dx.data()[i]) * dT.data()[i], sq += double(dH.data()[i]) * dH.data()[i];
  const double want = (-2.0 * cross + sq) / double(B);
  std::vector<double> losses;
  for (int threads : {1, 3}) {
    be.setThreads(threads);
    Tensor upT = Tensor::empty(s), upH = dH.clone();
    losses.push_back(be.dtpDrlLoss(dx, dT, upH, scale, &upT, &upH));  // upHat in place of dHat
    EXPECT_NEAR(losses.back(), want, 1e-12 * std::abs(want));
    // The chain drlLoss ran before: zeros + axpy, and a scale of r^ - r in place.
    Tensor oldT = Tensor::zeros(s), oldH = dH.clone();
    be.axpy(-2.f * scale / float(B), dx, oldT);
    be.scale(oldH, 2.f * scale / float(B));
    EXPECT_TRUE(sameBits(upT, oldT));
    EXPECT_TRUE(sameBits(upH, oldH));
  }
  be.setThreads(2);
  EXPECT_EQ(std::memcmp(&losses[0], &losses[1], sizeof(double)), 0) << "1 vs 3 threads";
  EXPECT_EQ(be.dtpDrlLoss(dx, dT, dH, scale, nullptr, nullptr), losses[0]) << "loss only";
}

TEST(FusedOps, FirstTargetMatchesTheFormulaAndTheOldChainOfOps) {
  Backend& be = cpu();
  const int64_t n = 21, k = 10;
  const Tensor z = randn(Shape{n, k}, 13, 2.f), labels = labelsFor(n, k, 14);
  const float beta = 0.7f;
  Tensor t = Tensor::empty(Shape{n, k});
  const LogitStats st = be.dtpFirstTarget(z, labels, beta, t);
  // The chain computeTargets ran before.
  Tensor probs = Tensor::empty(Shape{n, k}), delta = Tensor::empty(Shape{n, k}), old = Tensor::empty(Shape{n, k});
  const float ce = be.softmaxXentForward(z, labels, probs);
  EXPECT_EQ(st.ce, double(ce));
  EXPECT_EQ(st.correct, be.countCorrect(z, labels));
  be.softmaxXentBackward(probs, labels, delta, -beta);
  be.add(z, delta, old);
  EXPECT_TRUE(sameBits(t, old));
  std::vector<double> want(size_t(n * k));
  for (int64_t i = 0; i < n; ++i) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < k; ++j) mx = std::max(mx, double(z.data()[i * k + j]));
    for (int64_t j = 0; j < k; ++j) sum += std::exp(double(z.data()[i * k + j]) - mx);
    for (int64_t j = 0; j < k; ++j) {
      const double p = std::exp(double(z.data()[i * k + j]) - mx) / sum;
      want[size_t(i * k + j)] = z.data()[i * k + j] - beta * (p - (j == labels.data<int32_t>()[i] ? 1.0 : 0.0));
    }
  }
  EXPECT_TRUE(near(t, want, 1e-6));
  Tensor bad = labels.clone();
  bad.data<int32_t>()[3] = int32_t(k);
  EXPECT_THROW(be.dtpFirstTarget(z, bad, beta, t), DataError);
}

TEST(FusedOps, DifferenceTargetMatchesTheOldChainOfOps) {
  Backend& be = cpu();
  const Shape s{4, 6, 7};
  const Tensor h = randn(s, 15), gt = randn(s, 16), gh = randn(s, 17);
  Tensor t = Tensor::empty(s), old = Tensor::empty(s);
  be.dtpDifferenceTarget(h, gt, gh, t);
  be.add(h, gt, old);
  be.axpy(-1.f, gh, old);
  EXPECT_TRUE(sameBits(t, old));
  for (int64_t i = 0; i < s.numel(); ++i) ASSERT_EQ(t.data()[i], (h.data()[i] + gt.data()[i]) - gh.data()[i]);
}

TEST(FusedOps, LocalLossMatchesTheFormulaOnAnyThreadCount) {
  Backend& be = cpu();
  const Shape s{32, 4, 32, 32};
  const Tensor h = randn(s, 18), t = randn(s, 19);
  const int64_t B = s[0];
  double sq = 0;
  for (int64_t i = 0; i < s.numel(); ++i) {
    const double d = double(h.data()[i]) - t.data()[i];
    sq += d * d;
  }
  std::vector<double> losses;
  for (int threads : {1, 3}) {
    be.setThreads(threads);
    Tensor g = Tensor::empty(s);
    losses.push_back(be.dtpLocalLoss(h, t, g));
    EXPECT_NEAR(losses.back(), 0.5 * sq / double(B), 1e-6 * losses.back());  // float differences
    Tensor old = h.clone();
    be.axpy(-1.f, t, old);
    be.scale(old, 1.f / float(B));
    EXPECT_TRUE(sameBits(g, old));
  }
  be.setThreads(2);
  EXPECT_EQ(std::memcmp(&losses[0], &losses[1], sizeof(double)), 0) << "1 vs 3 threads";
}

}  // namespace
}  // namespace sw
