// Finite-difference checks of every layer's backward (input and parameter gradients), both
// losses, Residual and a small Sequential, in float32 (ggml's grad mode), plus Dropout's mask:
// its rate, reuse in backward, and identity in eval mode. The loss probed is L = sum(y * r) for
// a fixed random r, whose gradient is what backward(r) returns.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <tuple>

#include "backend/Backend.h"
#include "nn/BatchNorm.h"
#include "nn/Conv.h"
#include "nn/Elementwise.h"
#include "nn/Linear.h"
#include "nn/Loss.h"
#include "nn/Pool.h"
#include "nn/Reversible.h"
#include "nn/Sequential.h"
#include "nn/Zoo.h"

namespace sw {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = makeCpuBackend(2);
  return *be;
}

// The same backend with the reference im2col + GEMM convolution (cpu() uses oneDNN's kernels
// where the build has them).
Backend& cpuIm2col() {
  static std::unique_ptr<Backend> be = makeCpuBackend(2, CpuConv::kIm2col);
  return *be;
}

Tensor randn(const Shape& s, Rng& rng, float scale = 1.f) {
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = scale * rng.normal();
  return t;
}

// Normal values pushed at least `gap` away from 0: ReLU and ELU kinks stay out of reach of a
// perturbation of size eps < gap.
Tensor awayFromZero(const Shape& s, Rng& rng, float gap = 0.1f) {
  Tensor t = randn(s, rng);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += t.data()[i] >= 0 ? gap : -gap;
  return t;
}

// Distinct values 0.05 apart in random order: no max-pool window has a runner-up within 2 eps
// of its max, so the argmax cannot change under the perturbation.
Tensor distinct(const Shape& s, Rng& rng) {
  Tensor t = Tensor::empty(s);
  std::vector<int64_t> perm(static_cast<size_t>(t.numel()));
  std::iota(perm.begin(), perm.end(), 0);
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[rng.below(i)]);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.05f * (perm[i] - t.numel() / 2.f);
  return t;
}

double dot(const Tensor& a, const Tensor& b) {
  double s = 0;
  for (int64_t i = 0; i < a.numel(); ++i) s += double(a.data()[i]) * b.data()[i];
  return s;
}

// Tolerances. Central differences in float32 with eps = 1e-2 have truncation error ~eps^2 f'''
// (~1e-4 relative for tanh/sigmoid/BN) and rounding error ~1e-7 |L| / eps; both stay well below
// rtol = 5e-3 of the gradient's scale, while a wrong term (a missing mean in BN backward, a
// swapped index, a wrong activation derivative) is off by 1e-1 or more.
struct GcOpts {
  float eps = 1e-2f;
  double rtol = 5e-3, atol = 1e-5;
  int directions = 3;    // random-sign unit directions: error vs rtol * ||g||_2 / sqrt(n)
  int coords = 4;        // single coordinates (largest |g| first, then random): vs rtol * max|g|
  bool reluGuard = false;  // y is a ReLU output: skip perturbations that flip any y > 0
};

struct Worst {
  double frac = 0;  // largest error / tolerance seen
  int checks = 0;
};

// Central difference of L along v on tensor t (restored afterwards) against the analytic <g, v>,
// both computed from the values actually applied so that float rounding of t +- eps v cancels.
// Returns false when the guard saw the active set change (the caller draws another direction).
bool checkAlong(const std::function<double(std::vector<uint8_t>*)>& L, Tensor& t, const Tensor& g,
                const Tensor& v, const GcOpts& o, double tol, const std::string& what,
                Worst& worst) {
  const Tensor t0 = t.clone();
  std::vector<uint8_t> p0, pp, pm;
  if (o.reluGuard) L(&p0);
  double an = 0;
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = t0.data()[i] + o.eps * v.data()[i];
  const double lp = L(o.reluGuard ? &pp : nullptr);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float plus = t.data()[i];
    t.data()[i] = t0.data()[i] - o.eps * v.data()[i];
    an += double(g.data()[i]) * (double(plus) - t.data()[i]);
  }
  const double lm = L(o.reluGuard ? &pm : nullptr);
  std::copy(t0.data(), t0.data() + t0.numel(), t.data());
  if (o.reluGuard && (pp != p0 || pm != p0)) return false;
  an /= 2.0 * o.eps;
  const double fd = (lp - lm) / (2.0 * o.eps);
  const double err = std::fabs(fd - an);
  worst.frac = std::max(worst.frac, err / tol);
  ++worst.checks;
  EXPECT_LE(err, tol) << what << ": finite difference " << fd << " vs analytic " << an;
  return true;
}

void checkTensor(const std::function<double(std::vector<uint8_t>*)>& L, Tensor& t, const Tensor& g,
                 Rng& rng, const GcOpts& o, const std::string& what, Worst& worst) {
  ASSERT_TRUE(g.defined()) << what << ": no gradient";
  ASSERT_EQ(t.shape(), g.shape()) << what;
  double norm = 0, gmax = 0;
  for (int64_t i = 0; i < g.numel(); ++i) {
    norm += double(g.data()[i]) * g.data()[i];
    gmax = std::max(gmax, std::fabs(double(g.data()[i])));
  }
  norm = std::sqrt(norm);
  // Directions: random signs over all n entries, scaled to unit length so that the step
  // (eps in norm) stays small even for large tensors; <g, v> is then typically ||g|| / sqrt(n).
  const double inv = 1.0 / std::sqrt(static_cast<double>(t.numel()));
  int done = 0;
  for (int tries = 0; done < o.directions && tries < 20 * o.directions; ++tries) {
    Tensor v = Tensor::empty(t.shape());
    for (int64_t i = 0; i < v.numel(); ++i)
      v.data()[i] = static_cast<float>((rng.next() >> 63) ? inv : -inv);
    done += checkAlong(L, t, g, v, o, o.atol + o.rtol * norm * inv, what + " direction", worst);
  }
  EXPECT_EQ(done, o.directions) << what << ": too many perturbations crossed a ReLU kink";
  // Coordinates: the largest |g| (where a wrong scale shows most), then random ones.
  std::vector<int64_t> idx;
  int64_t best = 0;
  for (int64_t i = 1; i < g.numel(); ++i)
    if (std::fabs(g.data()[i]) > std::fabs(g.data()[best])) best = i;
  idx.push_back(best);
  while (static_cast<int>(idx.size()) < std::min<int64_t>(o.coords, g.numel()))
    idx.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(g.numel()))));
  for (int64_t i : idx) {
    Tensor v = Tensor::zeros(t.shape());
    v.data()[i] = 1.f;
    checkAlong(L, t, g, v, o, o.atol + o.rtol * gmax, what + "[" + std::to_string(i) + "]", worst);
  }
}

// Checks dL/dx and dL/dtheta of `layer` at x for L = sum(layer(x) * r), r random.
void gradCheck(const std::string& name, Layer& layer, Tensor x, Rng& rng, GcOpts o = {}) {
  SCOPED_TRACE(name);
  std::vector<Param*> ps;
  layer.collectParams(ps);
  Ctx ctx;
  const Tensor y = layer.forward(x, ctx, Mode::kTrain);
  const Tensor r = randn(y.shape(), rng);
  for (Param* p : ps) p->gradFresh = true;
  const Tensor dx = layer.backward(r, ctx, InputGrad::kNeeded);
  std::vector<Tensor> grads;
  for (Param* p : ps) grads.push_back(p->grad.clone());
  auto L = [&](std::vector<uint8_t>* pattern) {
    Ctx c;
    const Tensor out = layer.forward(x, c, Mode::kTrain);
    if (pattern) {
      pattern->resize(static_cast<size_t>(out.numel()));
      for (int64_t i = 0; i < out.numel(); ++i) (*pattern)[i] = out.data()[i] > 0.f;
    }
    return dot(out, r);
  };
  Worst worst;
  checkTensor(L, x, dx, rng, o, "dx", worst);
  for (size_t k = 0; k < ps.size(); ++k)
    checkTensor(L, ps[k]->value, grads[k], rng, o, "d" + ps[k]->name, worst);
  std::printf("[ gradchk  ] %-22s %3d checks, worst error %.2f of tolerance\n", name.c_str(),
              worst.checks, worst.frac);
}

TEST(GradCheck, Linear) {
  Rng rng(11);
  Linear l(cpu(), 6, 4, true, rng);
  gradCheck("linear", l, randn(Shape{5, 6}, rng), rng);
  Linear nb(cpu(), 3 * 2 * 2, 5, false, rng);  // [n, c, h, w] input: flattened, dx reshaped back
  gradCheck("linear_4d_nobias", nb, randn(Shape{3, 3, 2, 2}, rng), rng);
}

TEST(GradCheck, Conv2d) {
  Rng rng(12);
  struct C {
    int64_t k, s, p;
    bool bias;
    Shape x;
  };
  for (const C& c : {C{3, 1, 1, true, Shape{2, 3, 6, 5}}, C{3, 2, 1, false, Shape{2, 3, 7, 7}},
                     C{5, 1, 0, true, Shape{2, 2, 8, 8}}, C{1, 2, 0, true, Shape{2, 3, 5, 5}},
                     C{3, 1, 1, true, Shape{1, 2, 5, 5}}, C{1, 1, 0, false, Shape{1, 3, 4, 4}},
                     C{3, 1, 1, false, Shape{2, 16, 5, 5}}, C{3, 2, 1, false, Shape{2, 16, 6, 6}}}) {
    for (Backend* be : {&cpu(), &cpuIm2col()}) {
      Conv2d l(*be, ConvOpts{.in = c.x[1], .out = c.x[1] == 16 ? 16 : 4, .kernel = c.k, .stride = c.s, .pad = c.p, .bias = c.bias}, rng);
      gradCheck("conv k" + std::to_string(c.k) + "s" + std::to_string(c.s) + "p" +
                    std::to_string(c.p) + " n" + std::to_string(c.x[0]) + " c" + std::to_string(c.x[1]) +
                    (be == &cpu() ? "" : " im2col"),
                l, randn(c.x, rng), rng);
    }
  }
}

TEST(GradCheck, ConvTranspose2d) {
  Rng rng(13);
  ConvTranspose2d a(cpu(), ConvOpts{.in = 3, .out = 2, .kernel = 3, .stride = 1, .pad = 1}, rng);
  gradCheck("convt k3s1p1", a, randn(Shape{2, 3, 4, 5}, rng), rng);
  ConvTranspose2d b(cpu(), ConvOpts{.in = 3, .out = 2, .kernel = 3, .stride = 2, .pad = 1, .outputPad = 1}, rng);
  gradCheck("convt k3s2p1 op1", b, randn(Shape{2, 3, 4, 4}, rng), rng);
  ConvTranspose2d c(cpu(), ConvOpts{.in = 2, .out = 3, .kernel = 2, .stride = 2, .pad = 0, .bias = false}, rng);
  gradCheck("convt k2s2 nobias", c, randn(Shape{2, 2, 3, 3}, rng), rng);
}

TEST(GradCheck, BatchNorm) {
  Rng rng(14);
  // Non-trivial affine parameters; inputs off-centre so the mean term matters.
  for (const Shape& s : {Shape{6, 4}, Shape{3, 3, 4, 4}}) {
    BatchNorm bn(cpu(), s[1]);
    for (int64_t j = 0; j < s[1]; ++j) {
      bn.gamma().value.data()[j] = 1.f + 0.3f * rng.normal();
      bn.beta().value.data()[j] = 0.3f * rng.normal();
    }
    Tensor x = randn(s, rng, 1.5f);
    for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] += 0.7f;
    gradCheck("batchnorm" + std::to_string(s.rank() == 2 ? 1 : 2) + "d", bn, x, rng);
  }
}

// One value per channel (N*H*W == 1) has no batch variance: an error in training, as in PyTorch,
// on every backend (the check is the layer's), while evaluation uses the running statistics.
TEST(BatchNormContract, OneValuePerChannelIsAnErrorInTraining) {
  BatchNorm bn(cpu(), 3);
  for (const Shape& s : {Shape{1, 3}, Shape{1, 3, 1, 1}}) {
    Tensor x = Tensor::zeros(s);
    Ctx ctx;
    EXPECT_THROW(bn.forward(x, ctx, Mode::kTrain), ShapeError) << s.str();
    EXPECT_NO_THROW(bn.forward(x, ctx, Mode::kEval)) << s.str();
  }
  Ctx ctx;
  EXPECT_NO_THROW(bn.forward(Tensor::zeros(Shape{2, 3, 1, 1}), ctx, Mode::kTrain));
  EXPECT_NO_THROW(bn.forward(Tensor::zeros(Shape{1, 3, 1, 2}), ctx, Mode::kTrain));
}

// A pooling window that can lie wholly in the padding (pad > kernel / 2) is refused everywhere
// (max-unpooling's backward would read out of bounds), as PyTorch refuses it.
TEST(PoolContract, PaddingOverHalfTheKernelIsRefused) {
  const Shape x{1, 1, 6, 6};
  EXPECT_NO_THROW(PoolGeom::make(x, 2, 2, 1));
  EXPECT_NO_THROW(PoolGeom::make(x, 3, 1, 1));
  for (auto [k, s, p] : {std::tuple{2, 2, 2}, {2, 2, 3}, {3, 1, 2}, {0, 1, 0}, {2, 0, 0}, {2, 2, -1}})
    EXPECT_THROW(PoolGeom::make(x, k, s, p), ShapeError) << k << " " << s << " " << p;
}

TEST(GradCheck, Activations) {
  Rng rng(15);
  for (auto [name, a] : {std::pair{"relu", Act::kRelu}, std::pair{"elu", Act::kElu},
                         std::pair{"tanh", Act::kTanh}, std::pair{"sigmoid", Act::kSigmoid}}) {
    Activation l(cpu(), a, 1.f);
    gradCheck(name, l, awayFromZero(Shape{3, 4, 5}, rng), rng);
  }
  Activation elu2(cpu(), Act::kElu, 0.5f);  // alpha enters both branches of ELU's derivative
  gradCheck("elu alpha 0.5", elu2, awayFromZero(Shape{4, 6}, rng), rng);
}

TEST(GradCheck, Pooling) {
  Rng rng(16);
  MaxPool2d m2(cpu(), 2, 2);
  gradCheck("maxpool k2s2", m2, distinct(Shape{2, 3, 6, 5}, rng), rng);
  MaxPool2d m3(cpu(), 3, 3);
  gradCheck("maxpool k3s3", m3, distinct(Shape{2, 2, 7, 7}, rng), rng);
  MaxPool2d m32(cpu(), 3, 2);  // overlapping windows: one input can win twice
  gradCheck("maxpool k3s2", m32, distinct(Shape{1, 2, 7, 7}, rng), rng);
  AvgPool2d a2(cpu(), 2, 2);
  gradCheck("avgpool k2s2", a2, randn(Shape{2, 3, 6, 6}, rng), rng);
  AvgPool2d a3(cpu(), 3, 2, 1);
  gradCheck("avgpool k3s2p1", a3, randn(Shape{2, 2, 7, 7}, rng), rng);
  AvgPool2d g(cpu(), 0, 0);
  gradCheck("global avgpool", g, randn(Shape{2, 3, 5, 5}, rng), rng);
}

// MaxUnpool2d with indices from a paired pool, bound anew on every forward's Ctx (test adapter).
class BoundUnpool final : public Layer {
 public:
  BoundUnpool(Backend& be, Tensor idx, Shape out) : Layer(be), un_(be, 2, 2), idx_(idx), out_(out) {}
  std::string kind() const override { return "bound_unpool"; }
  Shape outputShape(const Shape&) const override { return out_; }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) override {
    MaxUnpool2d::bind(ctx, idx_, out_);
    return un_.forward(x, ctx, mode);
  }
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override {
    return un_.backward(dy, ctx, ig);
  }

 private:
  MaxUnpool2d un_;
  Tensor idx_;
  Shape out_;
};

TEST(GradCheck, MaxUnpool2d) {
  Rng rng(17);
  for (const Shape& s : {Shape{2, 3, 6, 6}, Shape{1, 2, 7, 6}}) {
    MaxPool2d pool(cpu(), 2, 2);
    Ctx pctx;
    const Tensor pooled = pool.forward(distinct(s, rng), pctx, Mode::kTrain);
    BoundUnpool un(cpu(), MaxPool2d::indices(pctx), s);
    gradCheck("maxunpool " + s.str(), un, randn(pooled.shape(), rng), rng);
  }
}

// Losses: L is the loss itself; backward(ctx, scale) must return scale * dL/dlogits.
TEST(GradCheck, Losses) {
  Rng rng(18);
  const GcOpts o;
  {
    SCOPED_TRACE("softmax cross-entropy");
    Tensor logits = randn(Shape{5, 7}, rng, 2.f);
    Tensor labels = Tensor::empty(Shape{5});
    for (int i = 0; i < 5; ++i) labels.data<int32_t>()[i] = static_cast<int32_t>(rng.below(7));
    SoftmaxCrossEntropy xent(cpu());
    Ctx ctx;
    xent.forward(logits, labels, ctx);
    Tensor g = xent.backward(ctx, 0.5f);
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= 2.f;
    auto L = [&](std::vector<uint8_t>*) {
      Ctx c;
      return static_cast<double>(xent.forward(logits, labels, c).loss);
    };
    Worst w;
    checkTensor(L, logits, g, rng, o, "dlogits", w);
    std::printf("[ gradchk  ] %-22s %3d checks, worst error %.2f of tolerance\n", "xent",
                w.checks, w.frac);
  }
  {
    SCOPED_TRACE("mse");
    Tensor y = randn(Shape{4, 6}, rng), target = randn(Shape{4, 6}, rng);
    MseLoss mse(cpu());
    Ctx ctx;
    mse.forward(y, target, ctx);
    Tensor g = mse.backward(ctx, 1.f);
    auto L = [&](std::vector<uint8_t>*) {
      Ctx c;
      return static_cast<double>(mse.forward(y, target, c));
    };
    Worst w;
    checkTensor(L, y, g, rng, o, "dy", w);
    std::printf("[ gradchk  ] %-22s %3d checks, worst error %.2f of tolerance\n", "mse",
                w.checks, w.frac);
  }
}

std::unique_ptr<Sequential> seq(Backend& be) { return std::make_unique<Sequential>(be); }

TEST(GradCheck, ResidualProjectionShortcut) {
  Rng rng(19);
  Backend& be = cpu();
  // A downsampling BasicBlock with a smooth inner activation (Tanh) so that the only kink is the
  // post-sum ReLU, which the guard keeps out of the perturbations.
  auto main = seq(be);
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 3, .out = 4, .kernel = 3, .stride = 2, .pad = 1, .bias = false}, rng), "conv1");
  main->add(std::make_unique<BatchNorm>(be, 4), "bn1");
  main->add(std::make_unique<Activation>(be, Act::kTanh), "tanh");
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 4, .out = 4, .kernel = 3, .stride = 1, .pad = 1, .bias = false}, rng), "conv2");
  main->add(std::make_unique<BatchNorm>(be, 4), "bn2");
  auto sc = seq(be);
  sc->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 3, .out = 4, .kernel = 1, .stride = 2, .pad = 0, .bias = false}, rng), "conv");
  sc->add(std::make_unique<BatchNorm>(be, 4), "bn");
  Residual block(be, std::move(main), std::move(sc), Act::kRelu);
  block.setName("block");
  GcOpts o;
  o.eps = 3e-3f;  // fewer ReLU crossings to skip
  o.reluGuard = true;
  gradCheck("residual projection", block, randn(Shape{2, 3, 6, 6}, rng), rng, o);
}

TEST(GradCheck, ResidualIdentityShortcut) {
  Rng rng(20);
  Backend& be = cpu();
  auto main = seq(be);
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 3, .out = 3, .kernel = 3, .stride = 1, .pad = 1}, rng), "conv1");
  main->add(std::make_unique<Activation>(be, Act::kTanh), "tanh");
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 3, .out = 3, .kernel = 3, .stride = 1, .pad = 1}, rng), "conv2");
  Residual block(be, std::move(main), nullptr, Act::kIdentity);
  block.setName("block");
  gradCheck("residual identity", block, randn(Shape{2, 3, 5, 5}, rng), rng);
}

// Parle's wide-ResNet blocks as the zoo builds them (pre-activation BN-ReLU-conv x 2, the 1x1
// projection of the raw input when the width changes): the downsampling block and the head.
TEST(GradCheck, WideResNetBlocks) {
  Rng rng(22);
  ModelSpec s;
  s.name = "wrn";
  s.depth = 10;
  s.width = 1;
  s.dropout = 0;
  auto m = buildModel(cpu(), s, Shape{3, 8, 8}, 5, 3);
  // Batch-norm shifts of +6 keep every ReLU input positive (no kink within reach of a
  // perturbation), so the check covers the blocks' wiring; ReLU itself is checked above.
  for (size_t b : {2, 4})
    for (Param* p : m->params({b, b + 1}))
      if (p->name.find("bn") != std::string::npos && p->name.find(".bias") != std::string::npos) p->value.fill(6.f);
  // Float32 roundoff through two training-mode batch norms dominates the finite differences
  // (measured: the error grows as eps shrinks, 1.6x the default tolerance at eps 1e-2, 12x at
  // 1e-3), hence rtol 1e-2; a wiring error (a lost shortcut or branch gradient) is O(1).
  GcOpts o;
  o.eps = 1e-2f;
  o.rtol = 1e-2;
  gradCheck("wrn downsampling block", m->block(2), randn(Shape{2, 16, 8, 8}, rng), rng, o);
  gradCheck("wrn head", m->block(4), randn(Shape{2, 64, 2, 2}, rng), rng, o);
}

TEST(GradCheck, Sequential) {
  Rng rng(21);
  Backend& be = cpu();
  Sequential net(be);
  net.add(std::make_unique<Conv2d>(be, ConvOpts{.in = 2, .out = 3, .kernel = 3, .stride = 1, .pad = 1}, rng), "conv");
  net.add(std::make_unique<BatchNorm>(be, 3), "bn");
  net.add(std::make_unique<Activation>(be, Act::kElu, 1.f), "elu");
  net.add(std::make_unique<AvgPool2d>(be, 2, 2), "pool");
  net.add(std::make_unique<Flatten>(be), "flatten");
  net.add(std::make_unique<Linear>(be, 3 * 3 * 3, 4, true, rng), "fc");
  net.add(std::make_unique<Activation>(be, Act::kSigmoid), "sigmoid");
  net.setName("net");
  gradCheck("sequential", net, randn(Shape{3, 2, 6, 6}, rng), rng);
}

// Reversible coupling y = x~ + F(x), y~ = x and the RevNet downsampling block, with smooth
// inner activations so no kink is in reach; and adaptive average pooling (7x7 from 5x5 and 1x1).
TEST(GradCheck, ReversibleCoupling) {
  Rng rng(22);
  Backend& be = cpu();
  auto f = seq(be);
  f->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 3, .out = 3, .kernel = 3, .stride = 1, .pad = 1}, rng), "conv");
  f->add(std::make_unique<BatchNorm>(be, 3), "bn");
  f->add(std::make_unique<Activation>(be, Act::kTanh), "tanh");
  RevCoupling block(be, std::move(f));
  block.setName("rev");
  // Half of the output passes inputs through unchanged: O(1) values whose float rounding in L
  // is ~1e-5 absolute noise on the difference quotient, so the absolute floor is raised.
  GcOpts o;
  o.atol = 1e-4;
  gradCheck("rev coupling", block, randn(Shape{2, 6, 5, 5}, rng), rng, o);
}

TEST(GradCheck, ReversibleDownsample) {
  Rng rng(23);
  Backend& be = cpu();
  auto a = seq(be), b = seq(be), sc = seq(be);
  a->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 2, .out = 4, .kernel = 3, .stride = 2, .pad = 1}, rng), "conv");
  a->add(std::make_unique<BatchNorm>(be, 4), "bn");
  a->add(std::make_unique<Activation>(be, Act::kTanh), "tanh");
  b->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 4, .out = 4, .kernel = 3, .stride = 1, .pad = 1}, rng), "conv");
  b->add(std::make_unique<Activation>(be, Act::kSigmoid), "sigmoid");
  sc->add(std::make_unique<Conv2d>(be, ConvOpts{.in = 2, .out = 4, .kernel = 1, .stride = 2, .pad = 0}, rng), "conv");
  sc->add(std::make_unique<BatchNorm>(be, 4), "bn");
  RevDownsample block(be, std::move(a), std::move(b), std::move(sc));
  block.setName("down");
  GcOpts o;
  o.atol = 1e-4;  // as for the coupling: h is passed through as y~
  gradCheck("rev downsample", block, randn(Shape{2, 4, 6, 6}, rng), rng, o);
}

TEST(GradCheck, AdaptiveAvgPool) {
  Rng rng(24);
  Backend& be = cpu();
  AdaptiveAvgPool2d p7(be, 7, 7), p3(be, 3, 2);
  p7.setName("adaptive7");
  p3.setName("adaptive3x2");
  gradCheck("adaptive 5x5->7x7", p7, randn(Shape{2, 3, 5, 5}, rng), rng);
  gradCheck("adaptive 1x1->7x7", p7, randn(Shape{2, 3, 1, 1}, rng), rng);
  gradCheck("adaptive 7x5->3x2", p3, randn(Shape{2, 2, 7, 5}, rng), rng);
}

// ---------------------------------------------------------------------------------------------
// Dropout: inverted dropout with a host-RNG mask; not differentiable by finite differences (the
// mask is redrawn per forward), so its contract is checked directly.

TEST(Dropout, MaskRateAndScale) {
  Rng rng(31);
  const float p = 0.3f;
  Dropout d(cpu(), p, &rng);
  const Tensor x = Tensor::full(Shape{200, 500}, 1.f);
  Ctx ctx;
  const Tensor y = d.forward(x, ctx, Mode::kTrain);
  int64_t zeros = 0;
  double sum = 0;
  const float keep = 1.f / (1.f - p);
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float v = y.data()[i];
    zeros += v == 0.f;
    sum += v;
    if (v != 0.f) {
      ASSERT_FLOAT_EQ(v, keep) << "kept values must be scaled by 1/(1-p)";
    }
  }
  // 100k Bernoulli(0.3) draws: sd 0.00145; 5 sd keeps this deterministic seed far from flaky.
  const double rate = double(zeros) / y.numel();
  EXPECT_NEAR(rate, p, 5 * std::sqrt(p * (1 - p) / y.numel()));
  EXPECT_NEAR(sum / y.numel(), 1.0, 5 * std::sqrt(p / (1 - p) / y.numel()))
      << "inverted dropout preserves the mean";
}

TEST(Dropout, BackwardReusesEachMicroBatchMask) {
  Rng rng(32), data(33);
  Dropout d(cpu(), 0.5f, &rng);
  const Tensor x = awayFromZero(Shape{8, 64}, data);
  const Tensor dyA = randn(x.shape(), data), dyB = randn(x.shape(), data);
  // Two micro-batches in flight (as in a pipeline): each backward must use its own mask.
  Ctx a, b;
  const Tensor ya = d.forward(x, a, Mode::kTrain).clone();
  const Tensor yb = d.forward(x, b, Mode::kTrain).clone();
  int64_t differ = 0;
  for (int64_t i = 0; i < x.numel(); ++i) differ += (ya.data()[i] == 0.f) != (yb.data()[i] == 0.f);
  EXPECT_GT(differ, 0) << "consecutive forwards drew the same mask";
  const Tensor dxb = d.backward(dyB, b, InputGrad::kNeeded);
  const Tensor dxa = d.backward(dyA, a, InputGrad::kNeeded);
  for (int64_t i = 0; i < x.numel(); ++i) {
    // y = x * m, so the mask is y / x and dx must be dy * m exactly.
    EXPECT_FLOAT_EQ(dxa.data()[i], dyA.data()[i] * (ya.data()[i] / x.data()[i])) << i;
    EXPECT_FLOAT_EQ(dxb.data()[i], dyB.data()[i] * (yb.data()[i] / x.data()[i])) << i;
  }
}

TEST(Dropout, SeedDeterminesMask) {
  Rng r1(34), r2(34);
  Dropout d1(cpu(), 0.25f, &r1), d2(cpu(), 0.25f, &r2);
  const Tensor x = Tensor::full(Shape{4, 100}, 2.f);
  Ctx c1, c2;
  const Tensor y1 = d1.forward(x, c1, Mode::kTrain), y2 = d2.forward(x, c2, Mode::kTrain);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y1.data()[i], y2.data()[i]) << i;
}

TEST(Dropout, EvalAndZeroRateAreIdentity) {
  Rng rng(35), data(36);
  const Tensor x = randn(Shape{5, 7}, data), dy = randn(Shape{5, 7}, data);
  Dropout d(cpu(), 0.5f, &rng);
  const Rng::State before = rng.state();
  Ctx ctx;
  const Tensor y = d.forward(x, ctx, Mode::kEval);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(y.data()[i], x.data()[i]) << i;
  EXPECT_EQ(rng.state(), before) << "eval mode must not consume the mask stream";
  Dropout none(cpu(), 0.f, &rng);
  Ctx c0;
  const Tensor y0 = none.forward(x, c0, Mode::kTrain);
  const Tensor dx0 = none.backward(dy, c0, InputGrad::kNeeded);
  for (int64_t i = 0; i < x.numel(); ++i) {
    ASSERT_EQ(y0.data()[i], x.data()[i]) << i;
    ASSERT_EQ(dx0.data()[i], dy.data()[i]) << i;
  }
}

}  // namespace
}  // namespace sw
