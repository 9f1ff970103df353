// Reversible networks and the pieces the asynchronous pipelines rely on:
//   - RevNet/ResNet/VGG parameter counts against seed-petra.md 2.5 and the torchvision/PipeDream
//     constructors (CIFAR-10 heads);
//   - a coupling's inverse: the x half bit-exact, x~ within the spec's ~1e-6 bound, error first
//     order in a parameter drift; the context the inverse leaves gives the forward's backward;
//   - a recompute forward (Mode::kRecompute) leaves batch-norm running statistics untouched;
//   - SpecTrain's predictor against its closed form (seed-spectrain.md 7, check 8).
#include <gtest/gtest.h>

#include <cmath>

#include "nn/BatchNorm.h"
#include "nn/Conv.h"
#include "nn/Elementwise.h"
#include "nn/Reversible.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"

namespace sw {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = makeCpuBackend(2);
  return *be;
}

Tensor randn(const Shape& s, Rng& rng) {
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.normal();
  return t;
}

int64_t count(const std::string& name, Shape in = Shape{3, 32, 32}) {
  ModelSpec s;
  s.name = name;
  return buildModel(cpu(), s, in, 10, 1)->numParams();
}

TEST(Models, ParameterCountsMatchTheReferences) {
  EXPECT_EQ(count("revnet18"), 11185802);  // seed-petra.md 2.5 (CIFAR-10)
  EXPECT_EQ(count("revnet34"), 21297674);
  EXPECT_EQ(count("resnet50"), 23528522);  // torchvision resnet50, 10 classes
  EXPECT_EQ(count("vgg16"), 134301514);    // torchvision vgg16 (no BN), 10 classes
}

TEST(Models, StagePartitionsOfThePetraSystem) {
  ModelSpec s;
  s.name = "revnet18";
  auto m = buildModel(cpu(), s, Shape{3, 32, 32}, 10, 1);
  // 0 stem | 1 R | 2 R | 3 D | 4 R | 5 D | 6 R | 7 D | 8 R | 9 head
  const std::string want = "NRRNRNRNRN";
  ASSERT_EQ(m->numBlocks(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(m->block(i).reversible(), want[i] == 'R') << "block " << i;
  s.name = "revnet34";
  EXPECT_EQ(buildModel(cpu(), s, Shape{3, 32, 32}, 10, 1)->numBlocks(), 18u);
  s.name = "resnet34";
  EXPECT_EQ(buildModel(cpu(), s, Shape{3, 32, 32}, 10, 1)->numBlocks(), 18u);
  s.name = "resnet50";
  EXPECT_EQ(buildModel(cpu(), s, Shape{3, 32, 32}, 10, 1)->numBlocks(), 18u);
  s.name = "vgg16";
  EXPECT_EQ(buildModel(cpu(), s, Shape{3, 32, 32}, 10, 1)->numBlocks(), 16u);
}

struct Coupling {
  Rng rng{5};
  std::unique_ptr<RevCoupling> block;
  explicit Coupling(int64_t c) {
    Backend& be = cpu();
    auto f = std::make_unique<Sequential>(be);
    for (int k = 0; k < 2; ++k) {
      f->add(std::make_unique<Conv2d>(be, ConvOpts{.in = c, .out = c, .kernel = 3, .stride = 1, .pad = 1}, rng), "conv" + std::to_string(k));
      f->add(std::make_unique<BatchNorm>(be, c), "bn" + std::to_string(k));
      f->add(std::make_unique<Activation>(be, Act::kRelu), "relu" + std::to_string(k));
    }
    block = std::make_unique<RevCoupling>(be, std::move(f));
    block->setName("rev");
  }
};

double relErr(const float* a, const float* b, int64_t n, double* maxAbs = nullptr) {
  double num = 0, den = 0, m = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
    m = std::max(m, std::fabs(double(a[i]) - b[i]));
  }
  if (maxAbs) *maxAbs = m;
  return std::sqrt(num / std::max(den, 1e-30));
}

TEST(Reversible, InverseRebuildsTheInput) {
  Coupling c(16);
  Rng rng(7);
  const Tensor x = randn(Shape{8, 32, 8, 8}, rng);
  Ctx fctx;
  const Tensor y = c.block->forward(x, fctx, Mode::kTrain);
  Ctx ictx;
  const Tensor xr = c.block->inverse(y, ictx);
  const int64_t half = 16 * 64;
  double maxAbs = 0;
  for (int64_t n = 0; n < 8; ++n) {
    const float* a = x.data() + n * 2 * half;
    const float* b = xr.data() + n * 2 * half;
    for (int64_t i = 0; i < half; ++i) ASSERT_EQ(a[i], b[i]) << "x half must be bit-exact";
    double m = 0;
    relErr(b + half, a + half, half, &m);
    maxAbs = std::max(maxAbs, m);
  }
  EXPECT_LE(maxAbs, 5e-6) << "x~ reconstruction";  // spec: 4.8e-7 on unit-variance data
  std::printf("[ reverse  ] coupling reconstruction max |x~ - rec| = %.2e\n", maxAbs);
}

TEST(Reversible, InverseContextGivesTheForwardsBackward) {
  Coupling c(4);
  Rng rng(8);
  const Tensor x = randn(Shape{4, 8, 6, 6}, rng), dy = randn(Shape{4, 8, 6, 6}, rng);
  std::vector<Param*> ps;
  c.block->collectParams(ps);
  auto grads = [&](bool viaInverse) {
    for (Param* p : ps) p->gradFresh = true;
    Ctx ctx;
    Tensor y = c.block->forward(x, ctx, Mode::kTrain);
    if (viaInverse) {
      ctx = Ctx{};
      c.block->inverse(y, ctx);
    }
    Tensor dx = c.block->backward(dy, ctx, InputGrad::kNeeded);
    std::vector<float> out(dx.data(), dx.data() + dx.numel());
    for (Param* p : ps) out.insert(out.end(), p->grad.data(), p->grad.data() + p->grad.numel());
    return out;
  };
  EXPECT_EQ(grads(false), grads(true));  // F's input is x exactly, so everything is bitwise equal
}

TEST(Reversible, ReconstructionErrorIsFirstOrderInParameterDrift) {
  Coupling c(8);
  Rng rng(9);
  const Tensor x = randn(Shape{8, 16, 8, 8}, rng);
  Ctx ctx;
  const Tensor y = c.block->forward(x, ctx, Mode::kTrain);
  std::vector<Param*> ps;
  c.block->collectParams(ps);
  std::vector<Tensor> saved;
  for (Param* p : ps) saved.push_back(p->value.clone());
  auto errAt = [&](float eps) {
    Rng r(11);
    for (size_t i = 0; i < ps.size(); ++i)
      for (int64_t k = 0; k < ps[i]->value.numel(); ++k)
        ps[i]->value.data()[k] = saved[i].data()[k] * (1.f + eps * r.normal());
    Ctx ic;
    Tensor xr = c.block->inverse(y, ic);
    for (size_t i = 0; i < ps.size(); ++i) std::copy(saved[i].data(), saved[i].data() + saved[i].numel(), ps[i]->value.data());
    return relErr(xr.data(), x.data(), x.numel());
  };
  const double e3 = errAt(1e-3f), e2 = errAt(1e-2f);
  EXPECT_GT(e3, 1e-5);
  EXPECT_NEAR(e2 / e3, 10.0, 3.0) << "error should scale linearly with the drift: " << e3 << " -> " << e2;
}

TEST(Reversible, RecomputeLeavesRunningStatisticsAlone) {
  Backend& be = cpu();
  BatchNorm bn(be, 3);
  bn.setName("bn");
  std::vector<Buffer*> bufs;
  bn.collectBuffers(bufs);
  Rng rng(3);
  const Tensor x = randn(Shape{4, 3, 5, 5}, rng);
  Ctx a, b;
  const Tensor y1 = bn.forward(x, a, Mode::kTrain);
  const std::vector<float> mean(bufs[0]->value.data(), bufs[0]->value.data() + 3);
  const Tensor y2 = bn.forward(x, b, Mode::kRecompute);
  EXPECT_EQ(std::vector<float>(bufs[0]->value.data(), bufs[0]->value.data() + 3), mean);
  EXPECT_EQ(std::vector<float>(y1.data(), y1.data() + y1.numel()), std::vector<float>(y2.data(), y2.data() + y2.numel()));
}

// W_hat_f = W - lr s (m B + D), W_hat_b = W - lr s m B, with D = g + wd W the last step's
// effective gradient; nothing before the first step; the true weights are untouched.
TEST(SpecTrain, PredictorMatchesTheClosedForm) {
  Backend& be = cpu();
  Param p{.name = "w", .value = Tensor::full(Shape{3}, 1.f), .grad = Tensor::zeros(Shape{3})};
  OptimConfig cfg;
  cfg.momentum = 0.9f;
  cfg.weightDecay = 0.1f;
  Optimizer opt(be, {&p}, cfg);
  opt.keepLastGradient(true);
  std::vector<Tensor> out;
  EXPECT_FALSE(opt.predict(0.5f, 2.f, true, out));
  const float g1[3] = {1.f, -2.f, 0.5f}, g2[3] = {0.25f, 1.f, -1.f};
  float w[3] = {1.f, 1.f, 1.f}, B[3], D[3];
  for (int step = 0; step < 2; ++step) {
    const float* g = step == 0 ? g1 : g2;
    std::copy(g, g + 3, p.grad.data());
    p.gradFresh = false;
    opt.step(0.1f);
    for (int i = 0; i < 3; ++i) {
      D[i] = g[i] + 0.1f * w[i];
      B[i] = step == 0 ? D[i] : 0.9f * B[i] + D[i];
      w[i] -= 0.1f * B[i];
    }
  }
  for (int i = 0; i < 3; ++i) ASSERT_FLOAT_EQ(p.value.data()[i], w[i]);
  ASSERT_TRUE(opt.predict(0.5f, 3.f, true, out));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[0].data()[i], w[i] - 0.5f * 3.f * (0.9f * B[i] + D[i]), 1e-6);
  ASSERT_TRUE(opt.predict(0.5f, 1.f, false, out));
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(out[0].data()[i], w[i] - 0.5f * 0.9f * B[i], 1e-6);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(p.value.data()[i], w[i]);
}

}  // namespace
}  // namespace sw
