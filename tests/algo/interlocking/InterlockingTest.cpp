// Interlocking backprop (seed-interlocking.md), single process, against truth that does not come
// from the code under test:
//   - the reference's hand-computed one-step results (spec 5.1: end-to-end, local, pairwise and
//     its sum/mean variants, 3-wise) on learned elementwise scales with a fixed head gradient;
//   - n-wise with n >= K equals plain backprop over the whole model, bitwise (check 2);
//   - the influence cone (check 6) and the step-1 cross-scheme identities (check 7);
//   - every gradient message against central finite differences of its loss, and the pairwise
//     parameter gradient against the backward of L_{c+1} through g_{c+1} o f_{c+1} o f_c (check 9);
//   - the input-only backward: the full backward's input gradient, bitwise, parameters untouched;
//   - auxiliary heads: the reference's parameter counts and layer lists, malformed strings;
//   - the rule's message counts (check 11), the stage schedule over a grid in the Validator (with
//     bounded sends), its periods under unit costs (check 12), broken programs caught;
//   - the trainer: local == a replay of local training written here, n >= K == bp, stop/resume,
//     configuration errors naming the key.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "config/TrainConfig.h"
#include "core/Error.h"
#include "data/Dataset.h"
#include "nn/AuxHead.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"
#include "schedule/Validator.h"
#include "algo/interlocking/InterlockingAlgorithm.h"
#include "algo/interlocking/InterlockingLoop.h"
#include "train/Trainer.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = makeCpuBackend(1);
  return *be;
}

std::vector<float> values(const std::vector<Param*>& ps) {
  std::vector<float> v;
  for (Param* p : ps) v.insert(v.end(), p->value.data(), p->value.data() + p->value.numel());
  return v;
}

std::vector<float> values(const std::vector<Buffer*>& bs) {
  std::vector<float> v;
  for (Buffer* b : bs) v.insert(v.end(), b->value.data(), b->value.data() + b->value.numel());
  return v;
}

Tensor randn(const Shape& s, Rng& rng, float scale = 1.f) {
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = scale * rng.normal();
  return t;
}

Tensor labelsOf(std::vector<int> ys) {
  Tensor t = Tensor::empty(Shape{int64_t(ys.size())});
  for (size_t i = 0; i < ys.size(); ++i) t.data<int32_t>()[i] = ys[i];
  return t;
}

// ---------------------------------------------------------------------------------------------
// The reference's hand tests (spec 5.1): each component multiplies its input elementwise by
// learned scales; the aux heads are scales [1, 1]; the head's "loss" has gradient 0.1 on every
// logit; the aux losses are cross-entropy; SGD with learning rate 1.

// y = x * w, w one value per feature or one shared value.
class Scale final : public Layer {
 public:
  Scale(Backend& be, std::vector<float> w) : Layer(be) {
    w_.value = Tensor::empty(Shape{int64_t(w.size())});
    for (size_t i = 0; i < w.size(); ++i) w_.value.data()[i] = w[i];
    w_.grad = Tensor::zeros(w_.value.shape());
    w_.name = "scale";
  }
  std::string kind() const override { return "scale"; }
  Shape outputShape(const Shape& in) const override { return in; }
  Tensor forward(const Tensor& x, Ctx& ctx, Mode) override {
    Tensor y = Tensor::empty(x.shape());
    const int64_t f = x.dim(1);
    for (int64_t i = 0; i < x.numel(); ++i) y.data()[i] = x.data()[i] * w(i % f);
    ctx.saved = {x};
    return y;
  }
  Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) override {
    const Tensor& x = ctx.saved.at(0);
    const int64_t f = x.dim(1);
    if (!w_.skipGrad) {
      if (w_.takeAcc() == Accumulate::kNo) w_.grad.fill(0.f);
      for (int64_t i = 0; i < x.numel(); ++i) w_.grad.data()[w_.value.numel() == 1 ? 0 : i % f] += dy.data()[i] * x.data()[i];
    }
    Tensor dx;
    if (ig == InputGrad::kNeeded) {
      dx = Tensor::empty(x.shape());
      for (int64_t i = 0; i < x.numel(); ++i) dx.data()[i] = dy.data()[i] * w(i % f);
    }
    ctx.clear();
    return dx;
  }
  void collectParams(std::vector<Param*>& out) override { out.push_back(&w_); }

 private:
  float w(int64_t i) const { return w_.value.numel() == 1 ? w_.value.data()[0] : w_.value.data()[i]; }
  Param w_;
};

using Scales = std::vector<std::vector<float>>;

// One step of `rule` on components with the given scales; returns every main net's scales after.
Scales handStep(const Scales& init, std::vector<float> x, InterlockRule rule) {
  const int K = int(init.size());
  Model m(cpu(), Shape{int64_t(x.size())}, 2, 0);
  std::vector<BlockRange> comps;
  for (int c = 0; c < K; ++c) {
    m.addBlock("c" + std::to_string(c)).add(std::make_unique<Scale>(cpu(), init[size_t(c)]));
    comps.push_back({size_t(c), size_t(c) + 1});
  }
  for (int c = 0; c + 1 < K; ++c) {
    auto aux = std::make_unique<Sequential>(cpu());
    aux->add(std::make_unique<Scale>(cpu(), std::vector<float>(init[size_t(c)].size(), 1.f)));
    m.attachAux(size_t(c), std::move(aux));
  }
  InterlockingLoop loop(m, comps, rule);
  loop.setHeadLoss([](const Tensor& logits, const Tensor&, Tensor& d) {
    d = Tensor::full(logits.shape(), 0.1f);
    return LossResult{};
  });
  Tensor xt = Tensor::empty(Shape{1, int64_t(x.size())});
  for (size_t i = 0; i < x.size(); ++i) xt.data()[i] = x[i];
  loop.step(xt, labelsOf({1}));
  Optimizer opt(cpu(), m.params(), OptimConfig{.momentum = 0.f});
  opt.step(1.f);
  Scales out;
  for (int c = 0; c < K; ++c) out.push_back(values(m.params({size_t(c), size_t(c) + 1}, Aux::kExclude)));
  return out;
}

void expectScales(const Scales& got, const Scales& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t c = 0; c < want.size(); ++c) {
    ASSERT_EQ(got[c].size(), want[c].size()) << what;
    for (size_t i = 0; i < want[c].size(); ++i)
      EXPECT_NEAR(got[c][i], want[c][i], 1e-5) << what << ": component " << c << " scale " << i;
  }
}

TEST(InterlockingHand, EndToEndOnLearnedScalars) {
  // Scalars 2, 3, 4 on x = [1, 0]: 0.8, 2.2, 3.4 (global: n >= K).
  expectScales(handStep({{2}, {3}, {4}}, {1, 0}, {.distance = 2}), {{0.8f}, {2.2f}, {3.4f}}, "e2e");
  expectScales(handStep({{2}, {3}, {4}}, {1, 0}, {.distance = 7}), {{0.8f}, {2.2f}, {3.4f}}, "e2e, n = 8");
}

TEST(InterlockingHand, LocalPairwiseSumMeanAndThreeWise) {
  const Scales three{{2, 2}, {3, 3}, {4, 4}};
  expectScales(handStep(three, {1, 1}, {.distance = 0}), {{1.5f, 2.5f}, {2, 4}, {3.4f, 3.4f}}, "local");
  // Component 0 gets component 1's aux-loss gradient [1.5, -1.5], component 1 the head's [0.8, 0.8].
  expectScales(handStep(three, {1, 1}, {.distance = 1}), {{0.5f, 3.5f}, {2.2f, 2.2f}, {3.4f, 3.4f}}, "pairwise");
  expectScales(handStep(three, {1, 1}, {.distance = 1, .mode = PairwiseMode::kSum}), {{0, 4}, {1.2f, 3.2f}, {3.4f, 3.4f}}, "sum");
  expectScales(handStep(three, {1, 1}, {.distance = 1, .mode = PairwiseMode::kMean}), {{1, 3}, {2.1f, 3.1f}, {3.4f, 3.4f}}, "mean");
  // 3-wise on four components: component 0 trains on component 2's aux loss, 1 and 2 on the head's.
  expectScales(handStep({{2, 2}, {3, 3}, {4, 4}, {5, 5}}, {1, 1}, {.distance = 2}), {{-4, 8}, {-1, -1}, {1, 1}, {2.6f, 2.6f}},
               "3-wise");
}

// ---------------------------------------------------------------------------------------------
// Small real networks: an MLP of K one-block components (ReLU, optionally BN) with "fc" aux heads.

struct Net {
  std::unique_ptr<Model> m;
  std::vector<BlockRange> comps;
};

Net mlpNet(int K, bool bn, uint64_t seed = 3) {
  ModelSpec s;
  s.name = bn ? "mlp_bn" : "mlp";
  s.hidden.assign(size_t(K - 1), 10);
  Net n;
  n.m = buildModel(cpu(), s, Shape{12}, 5, seed);
  for (int c = 0; c < K; ++c) {
    n.comps.push_back({size_t(c), size_t(c) + 1});
    if (c + 1 < K) {
      Rng rng = Rng::derive(seed, 500 + uint64_t(c));
      n.m->attachAux(size_t(c), buildAuxHead(cpu(), "fc", Shape{10}, 5, rng, "test"));
    }
  }
  return n;
}

struct Batches {
  std::vector<Tensor> x, y;
};
Batches batches(int count, int64_t n = 16) {
  Batches b;
  Rng rng(17);
  for (int i = 0; i < count; ++i) {
    b.x.push_back(randn(Shape{n, 12}, rng));
    std::vector<int> ys;
    for (int64_t r = 0; r < n; ++r) ys.push_back(int(rng.below(5)));
    b.y.push_back(labelsOf(ys));
  }
  return b;
}

const OptimConfig kSgd{.momentum = 0.9f, .weightDecay = 1e-3f};

void trainLoop(Net& n, InterlockRule rule, const Batches& data, int steps) {
  InterlockingLoop loop(*n.m, n.comps, rule);
  Optimizer opt(cpu(), n.m->params(), kSgd);
  for (int t = 0; t < steps; ++t) {
    loop.step(data.x[size_t(t) % data.x.size()], data.y[size_t(t) % data.y.size()]);
    opt.step(0.05f);
    n.m->zeroGrad();
  }
}

// Plain backprop over the whole model (the monolithic network), same optimizer.
void trainBackprop(Model& m, const Batches& data, int steps) {
  SoftmaxCrossEntropy ce(cpu());
  Optimizer opt(cpu(), m.params({}, Aux::kExclude), kSgd);
  for (int t = 0; t < steps; ++t) {
    Ctx ctx, lc;
    Tensor y = m.forward(data.x[size_t(t) % data.x.size()], ctx, Mode::kTrain);
    ce.forward(y, data.y[size_t(t) % data.y.size()], lc);
    m.backward(ce.backward(lc), ctx);
    opt.step(0.05f);
    m.zeroGrad();
  }
}

TEST(Interlocking, NWiseWithNAtLeastKEqualsBackpropBitwise) {
  const Batches data = batches(4);
  for (bool bn : {false, true}) {
    Net ref = mlpNet(4, bn);
    trainBackprop(*ref.m, data, 10);
    for (int d : {3, 9}) {
      Net n = mlpNet(4, bn);
      trainLoop(n, {.distance = d}, data, 10);
      EXPECT_EQ(values(n.m->params({}, Aux::kExclude)), values(ref.m->params({}, Aux::kExclude))) << "bn " << bn << " d " << d;
      EXPECT_EQ(values(n.m->buffers({}, Aux::kExclude)), values(ref.m->buffers({}, Aux::kExclude))) << "bn " << bn << " d " << d;
    }
    // ... while pairwise does not.
    Net p = mlpNet(4, bn);
    trainLoop(p, {.distance = 1}, data, 10);
    EXPECT_NE(values(p.m->params({}, Aux::kExclude)), values(ref.m->params({}, Aux::kExclude)));
  }
}

void perturb(Model& m, BlockRange r, uint64_t seed) {
  Rng rng(seed);
  for (Param* p : m.params(r, Aux::kExclude))
    for (int64_t i = 0; i < p->value.numel(); ++i) p->value.data()[i] += 1e-2f * rng.normal();
}

// Check 6: perturb component p's initial weights; after T steps non-head component c has moved
// iff p <= c + d T, the head always.
TEST(Interlocking, InfluenceCone) {
  const int K = 5;
  const Batches data = batches(3);
  for (int d : {0, 1, 2, 3})
    for (int T : {1, 2, 3})
      for (int p = 0; p < K; ++p) {
        Net a = mlpNet(K, true), b = mlpNet(K, true);
        perturb(*b.m, b.comps[size_t(p)], 99);
        trainLoop(a, {.distance = d}, data, T);
        trainLoop(b, {.distance = d}, data, T);
        for (int c = 0; c < K; ++c) {
          if (c == p) continue;  // its own weights differ from the start
          const bool moved = values(a.m->params(a.comps[size_t(c)], Aux::kExclude)) != values(b.m->params(b.comps[size_t(c)], Aux::kExclude));
          const bool expect = c == K - 1 || p <= c + d * T;
          EXPECT_EQ(moved, expect) << "d " << d << " T " << T << " perturbed " << p << " component " << c;
        }
      }
}

// Check 7: one step from the same weights.
TEST(Interlocking, StepOneIdentitiesAcrossSchemes) {
  const int K = 5;
  const Batches data = batches(1);
  struct Run {
    std::string name;
    InterlockRule rule;
    Net net;
  };
  std::vector<Run> runs;
  for (int d = 0; d <= 4; ++d) runs.push_back({"d=" + std::to_string(d), {.distance = d}, mlpNet(K, true)});
  runs.push_back({"sum", {.distance = 1, .mode = PairwiseMode::kSum}, mlpNet(K, true)});
  runs.push_back({"mean", {.distance = 1, .mode = PairwiseMode::kMean}, mlpNet(K, true)});
  for (Run& r : runs) trainLoop(r.net, r.rule, data, 1);
  const Run& global = runs[4];
  auto comp = [&](const Run& r, int c) { return values(r.net.m->params(r.net.comps[size_t(c)], Aux::kExclude)); };
  auto aux = [&](const Run& r, int c) {
    std::vector<Param*> ps;
    r.net.m->aux(size_t(c))->collectParams(ps);
    return values(ps);
  };
  for (const Run& r : runs) {
    EXPECT_EQ(comp(r, K - 1), comp(global, K - 1)) << r.name << ": the head's update";
    for (int c = 0; c + 1 < K; ++c) EXPECT_EQ(aux(r, c), aux(runs[0], c)) << r.name << ": aux head " << c;
  }
  for (int d = 0; d <= 4; ++d)
    for (int c = 0; c + 1 < K; ++c) {
      if (c + d >= K - 1) EXPECT_EQ(comp(runs[size_t(d)], c), comp(global, c)) << "d " << d << " component " << c;
      else EXPECT_NE(comp(runs[size_t(d)], c), comp(global, c)) << "d " << d << " component " << c;
    }
}

// Loss j as a function of component c's input (training-mode forward without touching the BN
// statistics).
double lossFrom(Net& n, int c, int j, const Tensor& in, const Tensor& y) {
  Tensor h = in;
  for (int k = c; k <= j; ++k) {
    Ctx ctx;
    h = n.m->forward(h, ctx, Mode::kRecompute, n.comps[size_t(k)]);
  }
  if (j + 1 < int(n.comps.size())) {
    Ctx ctx;
    h = n.m->aux(n.comps[size_t(j)].end - 1)->forward(h, ctx, Mode::kRecompute);
  }
  Tensor probs = Tensor::empty(h.shape());
  return cpu().softmaxXentForward(h, y, probs);
}

// Check 9: each message dL_j/dh_{c-1} against central differences of L_j along the message's
// own direction and a random one. Inputs are kept 0.2 away from the ReLU kinks' reach by using
// tanh-free MLPs with BN: a perturbation of 1e-2 flips a ReLU only where a pre-activation is
// within 1e-2 of 0, which a few units may be - hence directions, not single coordinates.
TEST(Interlocking, GradientMessagesMatchFiniteDifferences) {
  const int K = 4;
  const Batches data = batches(1, 32);
  double worst = 0;
  for (int d : {1, 2, 3}) {
    Net n = mlpNet(K, true);
    InterlockingLoop loop(*n.m, n.comps, {.distance = d});
    loop.keepMessages(true);
    // Component inputs as the step sees them (recomputed: the step's forward changes nothing
    // before its own BN statistics update, which recompute mode leaves alone).
    std::vector<Tensor> in(static_cast<size_t>(K));
    in[0] = data.x[0];
    for (int c = 1; c < K; ++c) {
      Ctx ctx;
      in[size_t(c)] = n.m->forward(in[size_t(c - 1)], ctx, Mode::kRecompute, n.comps[size_t(c - 1)]);
    }
    loop.step(data.x[0], data.y[0]);
    const InterlockRule rule{.components = K, .distance = d};
    int checked = 0;
    for (int c = 1; c < K; ++c)
      for (int j : rule.sent(c)) {
        auto it = loop.messages().find({c, j});
        ASSERT_NE(it, loop.messages().end()) << "component " << c << " loss " << j;
        const Tensor& g = it->second;
        ASSERT_EQ(g.shape(), in[size_t(c)].shape());
        double gn = 0;
        for (int64_t i = 0; i < g.numel(); ++i) gn += double(g.data()[i]) * g.data()[i];
        gn = std::sqrt(gn);
        Rng rng(uint64_t(7 + c + 10 * j));
        for (int dir = 0; dir < 2; ++dir) {
          Tensor v = dir == 0 ? g.clone() : randn(g.shape(), rng);
          double vn = 0;
          for (int64_t i = 0; i < v.numel(); ++i) vn += double(v.data()[i]) * v.data()[i];
          for (int64_t i = 0; i < v.numel(); ++i) v.data()[i] = float(v.data()[i] / std::sqrt(vn));
          const float eps = 1e-2f;
          Tensor plus = in[size_t(c)].clone(), minus = in[size_t(c)].clone();
          for (int64_t i = 0; i < v.numel(); ++i) plus.data()[i] += eps * v.data()[i], minus.data()[i] -= eps * v.data()[i];
          const double fd = (lossFrom(n, c, j, plus, data.y[0]) - lossFrom(n, c, j, minus, data.y[0])) / (2.0 * eps);
          double an = 0;
          for (int64_t i = 0; i < v.numel(); ++i) an += double(g.data()[i]) * v.data()[i];
          EXPECT_NEAR(fd, an, 2e-2 * gn + 1e-5) << "d " << d << " message of loss " << j << " from component " << c << " direction " << dir;
          worst = std::max(worst, std::abs(fd - an) / gn);
          ++checked;
        }
      }
    EXPECT_GT(checked, 0);
  }
  std::printf("[ fd       ] largest |finite difference - message . v| / |message|: %.2e (tolerance 2e-2)\n", worst);
}

// Check 9, second half: pairwise component c's parameter gradient is the backward of L_{c+1}
// through g_{c+1}, f_{c+1}, f_c.
TEST(Interlocking, PairwiseParameterGradientIsTheNextAuxLossThroughBothComponents) {
  const int K = 4;
  const Batches data = batches(1);
  Net a = mlpNet(K, false), b = mlpNet(K, false);
  InterlockingLoop loop(*a.m, a.comps, {.distance = 1});
  loop.step(data.x[0], data.y[0]);
  for (int c = 0; c + 2 < K; ++c) {
    Ctx ctx, actx, lc;
    b.m->zeroGrad();
    Tensor h = data.x[0];
    if (c > 0) h = b.m->forward(h, ctx, Mode::kRecompute, {0, size_t(c)});
    Ctx ctx2;
    Tensor o = b.m->forward(h, ctx2, Mode::kRecompute, {size_t(c), size_t(c) + 2});
    Tensor logits = b.m->aux(size_t(c) + 1)->forward(o, actx, Mode::kRecompute);
    SoftmaxCrossEntropy ce(cpu());
    ce.forward(logits, data.y[0], lc);
    Tensor dh = b.m->aux(size_t(c) + 1)->backward(ce.backward(lc), actx, InputGrad::kNeeded);
    b.m->backward(dh, ctx2, {size_t(c), size_t(c) + 2}, InputGrad::kSkip);
    std::vector<float> ga, gb;
    for (Param* p : a.m->params(a.comps[size_t(c)], Aux::kExclude)) ga.insert(ga.end(), p->grad.data(), p->grad.data() + p->grad.numel());
    for (Param* p : b.m->params(b.comps[size_t(c)], Aux::kExclude)) gb.insert(gb.end(), p->grad.data(), p->grad.data() + p->grad.numel());
    EXPECT_EQ(ga, gb) << "component " << c;
  }
}

// The local scheme: component 0 with its aux head equals f_0 + g_0 trained alone.
TEST(Interlocking, LocalComponentZeroEqualsItsHeadTrainedAlone) {
  const Batches data = batches(3);
  Net n = mlpNet(4, true), alone = mlpNet(4, true);
  trainLoop(n, {.distance = 0}, data, 6);
  SoftmaxCrossEntropy ce(cpu());
  std::vector<Param*> ps = alone.m->params({0, 1});  // f_0 and g_0
  Optimizer opt(cpu(), ps, kSgd);
  for (int t = 0; t < 6; ++t) {
    Ctx ctx, actx, lc;
    Tensor h = alone.m->forward(data.x[size_t(t) % 3], ctx, Mode::kTrain, {0, 1});
    Tensor logits = alone.m->aux(0)->forward(h, actx, Mode::kTrain);
    ce.forward(logits, data.y[size_t(t) % 3], lc);
    alone.m->backward(alone.m->aux(0)->backward(ce.backward(lc), actx, InputGrad::kNeeded), ctx, {0, 1}, InputGrad::kSkip);
    opt.step(0.05f);
    alone.m->zeroGrad({0, 1});
  }
  EXPECT_EQ(values(n.m->params({0, 1})), values(alone.m->params({0, 1})));
}

// ---------------------------------------------------------------------------------------------
// Input-only backward.

TEST(Interlocking, InputOnlyBackwardEqualsTheFullBackwardsInputGradient) {
  struct M {
    std::string name;
    Shape in;
    int64_t width;
  };
  for (const M& mm : std::vector<M>{{"mlp_bn", Shape{1, 6, 6}, 0},
                                    {"lenet", Shape{1, 28, 28}, 4},
                                    {"resnet18", Shape{3, 8, 8}, 4},
                                    {"revnet18", Shape{3, 8, 8}, 2},
                                    {"simple_vgg", Shape{3, 32, 32}, 8}}) {
    ModelSpec s;
    s.name = mm.name;
    s.width = mm.width;
    auto m = buildModel(cpu(), s, mm.in, 10, 5);
    Rng rng(3);
    std::vector<int64_t> dims{6};
    for (int64_t v : mm.in.dims()) dims.push_back(v);
    const BlockRange r{1, m->numBlocks()};
    Ctx ctx;
    Tensor h0 = m->forward(randn(Shape(dims), rng), ctx, Mode::kTrain, {0, 1});
    Tensor y = m->forward(h0, ctx, Mode::kTrain, r);
    Tensor dy = randn(y.shape(), rng);
    // Half the parameters hold a gradient already (accumulation), half are fresh.
    auto ps = m->params(r);
    for (size_t i = 0; i < ps.size(); i += 2) {
      ps[i]->grad.fill(0.25f);
      ps[i]->gradFresh = false;
    }
    std::vector<bool> fresh;
    for (Param* p : ps) fresh.push_back(p->gradFresh);
    std::vector<float> gradsBefore;
    for (Param* p : ps) gradsBefore.insert(gradsBefore.end(), p->grad.data(), p->grad.data() + p->grad.numel());
    Tensor dxOnly = inputOnlyBackward(*m, dy, ctx, r);
    std::vector<float> gradsAfter;
    for (size_t i = 0; i < ps.size(); ++i) {
      EXPECT_EQ(ps[i]->gradFresh, fresh[i]) << mm.name << " " << ps[i]->name;
      EXPECT_FALSE(ps[i]->skipGrad);
      gradsAfter.insert(gradsAfter.end(), ps[i]->grad.data(), ps[i]->grad.data() + ps[i]->grad.numel());
    }
    EXPECT_EQ(gradsAfter, gradsBefore) << mm.name << ": an input-only backward touched parameter gradients";
    // The context survives: a second input-only pass and then the full backward agree with it.
    Tensor dxAgain = inputOnlyBackward(*m, dy, ctx, r);
    Tensor dxFull = m->backward(dy, ctx, r, InputGrad::kNeeded);
    ASSERT_EQ(dxOnly.shape(), dxFull.shape());
    EXPECT_EQ(std::vector<float>(dxOnly.data(), dxOnly.data() + dxOnly.numel()),
              std::vector<float>(dxFull.data(), dxFull.data() + dxFull.numel())) << mm.name;
    EXPECT_EQ(std::vector<float>(dxAgain.data(), dxAgain.data() + dxAgain.numel()),
              std::vector<float>(dxFull.data(), dxFull.data() + dxFull.numel())) << mm.name;
  }
}

// ---------------------------------------------------------------------------------------------
// Auxiliary heads and the ResNet split.

int64_t auxParams(const std::string& arch, const Shape& feat) {
  Rng rng(1);
  auto h = buildAuxHead(cpu(), arch, feat, 10, rng, "interlocking.aux");
  std::vector<Param*> ps;
  h->collectParams(ps);
  int64_t n = 0;
  for (Param* p : ps) n += p->value.numel();
  return n;
}

std::vector<std::string> kinds(const std::string& arch, const Shape& feat) {
  Rng rng(1);
  auto h = buildAuxHead(cpu(), arch, feat, 10, rng, "interlocking.aux");
  std::vector<std::string> k;
  for (size_t i = 0; i < h->size(); ++i) k.push_back(h->at(i).kind());
  return k;
}

TEST(AuxHead, ReferenceParameterCountsAndLayers) {
  const std::string ex = "conv128_bn_conv64_bn_gbpl_fc";  // spec 1.3 / 6 check 10
  EXPECT_EQ(auxParams(ex, Shape{64, 32, 32}), 148682);
  EXPECT_EQ(auxParams(ex, Shape{128, 16, 16}), 222410);
  EXPECT_EQ(auxParams(ex, Shape{256, 8, 8}), 369866);
  using V = std::vector<std::string>;
  EXPECT_EQ(kinds("gbpl_fc", Shape{32, 4, 4}), (V{"global_avgpool", "flatten", "linear"}));
  EXPECT_EQ(kinds("conv32_gbpl_fc", Shape{16, 4, 4}), (V{"conv2d", "relu", "global_avgpool", "flatten", "linear"}));
  EXPECT_EQ(kinds("conv32_bn_gbpl_fc", Shape{16, 4, 4}),
            (V{"conv2d", "batchnorm", "relu", "global_avgpool", "flatten", "linear"}));
  EXPECT_EQ(kinds("fc", Shape{40}), (V{"linear"}));  // flat features: no pooling needed
  // The CIFAR ResNet-34 of the reference example (spec 2.2, check 10): 21,282,122 parameters.
  ModelSpec s;
  s.name = "resnet34";
  auto m = buildModel(cpu(), s, Shape{3, 32, 32}, 10, 1);
  EXPECT_EQ(m->numParams(), 21282122);
  EXPECT_EQ(m->numBlocks(), 18u);  // stem, 16 BasicBlocks, output head
}

TEST(AuxHead, MalformedArchitecturesNameTheKey) {
  for (const char* bad : {"flt_fc", "fc", "bn_gbpl_fc", "conv0_gbpl_fc", "convx_gbpl_fc", "gbpl", "conv16_bn_bn_gbpl_fc",
                                "gbpl_fc_", "conv16"}) {
    Rng rng(1);
    try {
      buildAuxHead(cpu(), bad, Shape{16, 4, 4}, 10, rng, "interlocking.aux");
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("interlocking.aux"), std::string::npos) << e.what();
    }
  }
  Rng rng(1);
  EXPECT_THROW(buildAuxHead(cpu(), "conv16_gbpl_fc", Shape{40}, 10, rng, "interlocking.aux"), ConfigError);
}

// ---------------------------------------------------------------------------------------------
// The rule, the stage schedule and the Validator.

TEST(InterlockRule, MessagesPerBoundary) {
  auto in = [](const std::vector<int>& v, int j) { return std::find(v.begin(), v.end(), j) != v.end(); };
  for (int K = 1; K <= 6; ++K)
    for (int d = 0; d <= K + 1; ++d)
      for (PairwiseMode mode : {PairwiseMode::kNextOnly, PairwiseMode::kSum, PairwiseMode::kMean}) {
        if (mode != PairwiseMode::kNextOnly && d != 1) continue;
        const InterlockRule r{.components = K, .distance = d, .mode = mode};
        for (int c = 0; c < K; ++c) {
          const std::string at = "K " + std::to_string(K) + " d " + std::to_string(d) + " c " + std::to_string(c);
          EXPECT_EQ(r.target(c), c == K - 1 ? K - 1 : std::min(c + d, K - 1)) << at;
          // Check 11: within the reference's list L_c .. L_{min(c+d-1, K-1)}, c = 0 and local none.
          const std::vector<int> out = r.sent(c);
          if (c == 0 || d == 0) {
            EXPECT_TRUE(out.empty()) << at;
          }
          EXPECT_LE(out.size(), size_t(std::min(d, K - c))) << at;
          for (int j : out) EXPECT_TRUE(j >= c && j <= std::min(c + d - 1, K - 1)) << at << " loss " << j;
          // Complete: a loss that trains component k crosses every boundary between k and it.
          for (int k = 0; k < c; ++k)
            for (int j : r.trainedOn(k))
              if (j >= c) {
                EXPECT_TRUE(in(out, j)) << at << ": L_" << j << " trains component " << k;
              }
          // Minimal: everything received is relayed down or trains the component.
          for (int j : r.received(c)) {
            bool used = false;
            for (const VjpItem& it : r.plan(c)) used |= it.loss == j;
            EXPECT_TRUE(used) << at << " loss " << j;
          }
          // Exactly one full backward per trained-on loss, the last on the furthest; the own
          // gradient first where it is sent.
          const auto plan = r.plan(c);
          ASSERT_FALSE(plan.empty()) << at;
          size_t full = 0;
          for (const VjpItem& it : plan) full += it.params;
          EXPECT_EQ(full, r.trainedOn(c).size()) << at;
          EXPECT_TRUE(plan.back().params) << at;
          EXPECT_EQ(plan.back().loss, r.trainedOn(c).back()) << at;
          if (in(out, c)) {
            EXPECT_EQ(plan.front().loss, c) << at;
          }
        }
      }
  // The seed's table, K = 5, 3-wise: 0 <- {2} <- {2, 3} <- {3, 4} <- {4} (the reference also sends
  // L_1 into component 0, which trains on L_2 alone); global sends one tensor per boundary.
  const InterlockRule w3{.components = 5, .distance = 2};
  EXPECT_EQ(w3.sent(1), (std::vector<int>{2}));
  EXPECT_EQ(w3.sent(2), (std::vector<int>{2, 3}));
  EXPECT_EQ(w3.sent(3), (std::vector<int>{3, 4}));
  EXPECT_EQ(w3.sent(4), (std::vector<int>{4}));
  for (int c = 1; c < 5; ++c) EXPECT_EQ((InterlockRule{.components = 5, .distance = 4}.sent(c)), (std::vector<int>{4}));
  EXPECT_THROW((InterlockRule{.components = 4, .distance = 2, .mode = PairwiseMode::kSum}.validate("k")), ConfigError);
}

int messagesOf(int S, int d, int M, int R) {
  const InterlockRule r{.components = S, .distance = d};
  int n = (S - 1) * M;
  for (int c = 0; c < S; ++c) n += int(r.sent(c).size()) * M;
  return n * R;
}

TEST(Schedule, InterlockingValidOverTheGrid) {
  auto sched = makeInterlockingSchedule();
  for (int S = 1; S <= 7; ++S)
    for (int M : {1, 2, 5, 12})
      for (int d = 0; d <= S; ++d)
        for (int R : {1, 2})
          for (PairwiseMode mode : {PairwiseMode::kNextOnly, PairwiseMode::kSum, PairwiseMode::kMean}) {
            if (mode != PairwiseMode::kNextOnly && d != 1) continue;
            ScheduleSpec spec{.stages = S, .replicas = R, .microbatches = M};
            spec.params.set<InterlockParams>() = {.distance = d, .pairwise = mode};
            spec.boundedSends = true;
            SimResult r = simulate(*sched, spec, SimCosts{.aux = 0.5});
            ASSERT_TRUE(r.ok) << "S=" << S << " M=" << M << " d=" << d << " R=" << R << ": " << r.error;
            EXPECT_EQ(r.messages, messagesOf(S, d, M, R)) << "S=" << S << " d=" << d;
            // One optimizer step per mini-batch on every rank.
            for (int k = 0; k < S; ++k) {
              int steps = 0;
              for (const Step& st : sched->build(k, spec))
                for (const Instr& in : st) steps += in.op == Op::kOptimizerStep;
              EXPECT_EQ(steps, M);
            }
          }
}

// Steady-state time per mini-batch under unit costs F = 1, B = 2, input-only backward 1, A = 0
// (spec 3.3 and check 12): local F + B, pairwise 2 (F + B) (the last pair: the head's full
// backward comes before its message), global K (F + B), n-wise between.
double period(int S, int d) {
  auto sched = makeInterlockingSchedule();
  auto span = [&](int M) {
    ScheduleSpec spec{.stages = S, .microbatches = M};
    spec.params.set<InterlockParams>().distance = d;
    spec.boundedSends = true;
    SimResult r = simulate(*sched, spec, SimCosts{.forward = 1, .backward = 2, .aux = 0, .inputGrad = 1});
    EXPECT_TRUE(r.ok) << r.error;
    return r.makespan;
  };
  return (span(40) - span(20)) / 20.0;
}

TEST(Schedule, InterlockingPeriodsUnderUnitCosts) {
  for (int S : {2, 4, 8}) {
    EXPECT_NEAR(period(S, 0), 3.0, 1e-9) << "local, S=" << S;
    EXPECT_NEAR(period(S, 1), 6.0, 1e-9) << "pairwise, S=" << S;
    EXPECT_NEAR(period(S, S - 1), 3.0 * S, 1e-9) << "global, S=" << S;
    for (int d = 2; d < S - 1; ++d) {
      EXPECT_LE(period(S, d), 3.0 * (d + 1) + 1e-9) << "n-wise d=" << d << " S=" << S;
      EXPECT_LE(period(S, d), 3.0 * S) << "never slower than global";
      EXPECT_GE(period(S, d), period(S, d - 1)) << "monotone in d";
    }
  }
}

TEST(Validator, CatchesInterlockingMistakes) {
  auto sched = makeInterlockingSchedule();
  ScheduleSpec spec{.stages = 3, .microbatches = 2};
  spec.params.set<InterlockParams>().distance = 2;
  spec.boundedSends = true;
  std::vector<Program> ok;
  for (int k = 0; k < 3; ++k) ok.push_back(sched->build(k, spec));
  ASSERT_TRUE(simulatePrograms(ok, spec).ok);
  // Stage 1 forgets to relay the head's gradient to stage 0.
  auto noRelay = ok;
  for (Step& s : noRelay[1]) std::erase_if(s, [](const Instr& in) { return in.op == Op::kSendGrad && in.loss == 2; });
  EXPECT_FALSE(simulatePrograms(noRelay, spec).ok);
  // Stage 0 backpropagates a loss it never received.
  auto wrong = ok;
  for (Step& s : wrong[0])
    for (Instr& in : s)
      if (in.op == Op::kRecvGrad && in.loss == 2) in.op = Op::kLoad, in.loss = -1, in.peer = -1, in.tag = -1;
  EXPECT_FALSE(simulatePrograms(wrong, spec).ok);
  // A gradient on the wrong channel.
  auto tag = ok;
  for (Step& s : tag[2])
    for (Instr& in : s)
      if (in.op == Op::kSendGrad) in.tag = kTagGrad;
  EXPECT_FALSE(simulatePrograms(tag, spec).ok);
  // The head has no aux head.
  auto headAux = ok;
  headAux[2].insert(headAux[2].begin() + 1, Step{{.op = Op::kLocalLoss, .mb = 0, .slot = 0}});
  EXPECT_FALSE(simulatePrograms(headAux, spec).ok);
}

// ---------------------------------------------------------------------------------------------
// The trainer, one process.

std::string freshDir(const std::string& name) {
  std::string d = ::testing::TempDir() + "/swil_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  return d;
}

TrainConfig resCfg(std::vector<std::string> extra) {
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=160", "data.synthetic_test=48",
                                "data.synthetic_shape=3,8,8", "model.name=resnet18", "model.width=4",
                                "train.batch_size=16", "train.epochs=2", "optim.lr=0.05", "optim.momentum=0.9",
                                "optim.weight_decay=2e-4", "runtime.threads=1", "train.seed=4", "checkpoint.every_epochs=0",
                                "interlocking.aux=conv8_bn_gbpl_fc", "interlocking.blocks_per_component=3,3,rest"};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

TEST(InterlockingTrainer, NWiseWithNAtLeastKEqualsBackprop) {
  Trainer bp(resCfg({"train.algo=bp"}), freshDir("bp"));
  bp.prepare();
  const EvalResult ebp = bp.run();
  for (const char* n : {"3", "5"}) {
    Trainer il(resCfg({"train.algo=interlocking", std::string("interlocking.n=") + n}), freshDir(std::string("n") + n));
    il.prepare();
    ASSERT_EQ(interlockingComponents(il.algorithm()).size(), 3u);
    const EvalResult e = il.run();
    EXPECT_EQ(values(il.model().params({}, Aux::kExclude)), values(bp.model().params({}, Aux::kExclude))) << "n " << n;
    EXPECT_EQ(values(il.model().buffers({}, Aux::kExclude)), values(bp.model().buffers({}, Aux::kExclude))) << "n " << n;
    EXPECT_EQ(e.loss, ebp.loss);
  }
}

// Local training replayed here from its definition: each component backpropagates its own aux
// loss (the head its true loss) and nothing crosses a component edge.
TEST(InterlockingTrainer, LocalEqualsAReplayOfLocalTraining) {
  const TrainConfig cfg = resCfg({"train.algo=local"});
  Trainer t(cfg, freshDir("local"));
  t.prepare();
  Trainer init(cfg, freshDir("local_init"));  // the same initial weights, driven by hand below
  init.prepare();
  t.run();
  Model& m = init.model();
  const auto comps = interlockingComponents(init.algorithm());
  DataSplits data = loadData(cfg.data);
  BatchLoader loader(data.train, cfg.train.batchSize, cfg.train.seed, Shard{}, cfg.augment, Shuffle::kYes, DropLast::kNo,
                     Augment::kYes);
  Optimizer opt(cpu(), m.params(), cfg.optim);
  SoftmaxCrossEntropy ce(cpu());
  for (int e = 0; e < cfg.train.epochs; ++e) {
    loader.seek(e, 0);
    Batch b;
    while (loader.next(b)) {
      Tensor h = b.x;
      for (size_t c = 0; c < comps.size(); ++c) {
        const BlockRange r{comps[c].begin, comps[c].end};
        Ctx ctx, actx, lc;
        h = m.forward(h, ctx, Mode::kTrain, r);
        Tensor dh;
        if (c + 1 < comps.size()) {
          ce.forward(m.aux(r.end - 1)->forward(h, actx, Mode::kTrain), b.labels, lc);
          dh = m.aux(r.end - 1)->backward(ce.backward(lc), actx, InputGrad::kNeeded);
        } else {
          ce.forward(h, b.labels, lc);
          dh = ce.backward(lc);
        }
        m.backward(dh, ctx, r, InputGrad::kSkip);
      }
      opt.step(cfg.lr.lr);
      m.zeroGrad();
    }
  }
  EXPECT_EQ(values(t.model().params()), values(m.params()));
  EXPECT_EQ(values(t.model().buffers()), values(m.buffers()));
}

TEST(InterlockingTrainer, StopAndResumeIsBitIdentical) {
  for (const char* algo : {"local", "interlocking"}) {
    const auto cfg = resCfg({std::string("train.algo=") + algo, "interlocking.drain_every=4"});
    Trainer ref(cfg, freshDir("ref"));
    ref.prepare();
    ref.run();
    const std::string dir = freshDir(std::string("resume_") + algo);
    {
      auto c1 = cfg;
      c1.train.maxSteps = 6;  // mid-epoch (10 batches per epoch)
      Trainer a(c1, dir);
      a.prepare();
      a.run();
    }
    Trainer b(cfg, dir, dir);
    b.prepare();
    EXPECT_EQ(b.progress().step, 8) << "resumes from the drain point at or after max_steps";
    b.run();
    EXPECT_EQ(values(b.model().params()), values(ref.model().params())) << algo;
    EXPECT_EQ(values(b.model().buffers()), values(ref.model().buffers())) << algo;
  }
}

TEST(InterlockingTrainer, OneAuxArchitecturePerComponent) {
  Trainer t(resCfg({"train.algo=interlocking", "interlocking.aux=conv8_bn_gbpl_fc, gbpl_fc", "train.max_steps=2"}), freshDir("auxlist"));
  t.prepare();
  ASSERT_NE(t.model().aux(2), nullptr);
  ASSERT_NE(t.model().aux(5), nullptr);
  EXPECT_EQ(t.model().aux(2)->size(), 6u);  // conv, bn, relu, pool, flatten, fc
  EXPECT_EQ(t.model().aux(5)->size(), 3u);  // pool, flatten, fc
  EXPECT_EQ(t.model().aux(9), nullptr);     // the head has none
  t.run();
}

// The shipped configs build what they promise (prepare only, synthetic data of the same shape).
TEST(InterlockingTrainer, ShippedConfigsBuildTheirNetworks) {
  struct C {
    std::string file, shape;
    std::vector<size_t> comps;     // blocks per component
    std::vector<int64_t> auxSize;  // parameters of each aux head
  };
  for (const C& c : std::vector<C>{{"cifar10_interlocking_resnet34.ini", "3,32,32", {1, 1, 1, 15}, {148682, 148682, 148682}},
                                   {"cifar10_interlocking_resnet34_balanced.ini", "3,32,32", {5, 4, 4, 5}, {222410, 369866, 369866}},
                                   {"fmnist_interlocking.ini", "1,28,28", {1, 1, 1, 1}, {-1, -1, 5010}},
                                   {"fmnist_interlocking_resnet18.ini", "1,28,28", {3, 2, 2, 3}, {-1, -1, -1}}}) {
    const TrainConfig cfg = parseConfig(std::string(SW_SOURCE_DIR) + "/configs/" + c.file,
                                        {"data.name=synthetic", "data.synthetic_shape=" + c.shape, "data.synthetic_train=64",
                                         "data.synthetic_test=64", "runtime.threads=1"});
    Trainer t(cfg, freshDir("cfg"));
    t.prepare();
    ASSERT_EQ(interlockingComponents(t.algorithm()).size(), c.comps.size()) << c.file;
    for (size_t k = 0; k < c.comps.size(); ++k) {
      EXPECT_EQ(interlockingComponents(t.algorithm())[k].end - interlockingComponents(t.algorithm())[k].begin, c.comps[k]) << c.file << " component " << k;
      if (k + 1 == c.comps.size() || c.auxSize[k] < 0) continue;
      std::vector<Param*> ps;
      t.model().aux(interlockingComponents(t.algorithm())[k].end - 1)->collectParams(ps);
      int64_t n = 0;
      for (Param* p : ps) n += p->value.numel();
      EXPECT_EQ(n, c.auxSize[k]) << c.file << " aux head " << k;
    }
  }
}

TEST(InterlockingTrainer, ConfigurationErrorsNameTheKey) {
  auto expectError = [](std::vector<std::string> o, const std::string& key) {
    try {
      Trainer t(resCfg(o), freshDir("bad"));
      t.prepare();
      ADD_FAILURE() << "accepted: " << o.back();
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  expectError({"train.algo=interlocking", "interlocking.blocks_per_component=3,3"}, "interlocking.blocks_per_component");
  expectError({"train.algo=interlocking", "interlocking.blocks_per_component=3,x,rest"}, "interlocking.blocks_per_component");
  expectError({"train.algo=interlocking", "interlocking.blocks_per_component=5,5,rest"}, "interlocking.blocks_per_component");
  expectError({"train.algo=interlocking", "interlocking.aux=conv8_fc"}, "interlocking.aux");
  expectError({"train.algo=interlocking", "interlocking.aux=conv8_bn_gbpl_fc,fc"}, "interlocking.aux");  // fc on images
  expectError({"train.algo=interlocking", "interlocking.aux=gbpl_fc,gbpl_fc,gbpl_fc"}, "interlocking.aux");  // 3 for 2 heads
  expectError({"train.algo=interlocking", "interlocking.n=3", "interlocking.pairwise_mode=sum"}, "interlocking.pairwise_mode");
  expectError({"train.algo=local", "interlocking.pairwise_mode=mean"}, "interlocking.pairwise_mode");
  expectError({"train.algo=interlocking", "pipe.microbatches=2"}, "pipe.microbatches");
  EXPECT_THROW(parseConfig("", {"interlocking.pairwise_mode=both"}), ConfigError);
  EXPECT_THROW(parseConfig("", {"interlocking.n=0"}), ConfigError);
}

}  // namespace
}  // namespace sw
