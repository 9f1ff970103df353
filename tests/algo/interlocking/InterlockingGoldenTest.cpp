// Interlocking backprop against PyTorch autograd (tests/golden/interlocking_lenet.h5, written by
// tools/make_interlocking_golden.py from the scheme definitions of seed-interlocking.md 1.1):
// LeNet (width 4, BN) as 4 one-block components with aux heads conv8_bn_gbpl_fc, conv8_bn_gbpl_fc
// and fc, 3 SGD steps (momentum, weight decay) of local, pairwise, 3-wise, global, sum and mean.
// The reference runs in float64, stagewise in float32: parameters after 3 steps agree to 1e-4 of
// each tensor's largest magnitude (measured: ~1e-6; a wrong loss for one component moves its
// parameters by 1e-2 of that scale or more, see the cross-scheme check below).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "io/H5.h"
#include "nn/AuxHead.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"
#include "algo/interlocking/InterlockingAlgorithm.h"
#include "algo/interlocking/InterlockingLoop.h"

namespace sw {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> be = makeCpuBackend(1);
  return *be;
}

constexpr double kTol = 1e-4;

struct Lenet {
  std::unique_ptr<Model> m;
  std::vector<BlockRange> comps;
};

Lenet build(const h5::File& f) {
  ModelSpec s{.name = "lenet", .dropout = 0.f, .batchnorm = true, .width = f.attrInt("/", "width")};
  Lenet l;
  l.m = buildModel(cpu(), s, Shape{1, 28, 28}, 10, 1);
  EXPECT_EQ(l.m->numBlocks(), 4u);
  const char* aux[] = {"conv8_bn_gbpl_fc", "conv8_bn_gbpl_fc", "fc"};
  for (size_t c = 0; c < 4; ++c) {
    l.comps.push_back({c, c + 1});
    if (c == 3) break;
    Rng rng(c);
    Shape out = l.m->blockOutputShape(c, 1);
    std::vector<int64_t> d(out.dims().begin() + 1, out.dims().end());
    l.m->attachAux(c, buildAuxHead(cpu(), aux[c], Shape(d), 10, rng, "test"));
  }
  // Weights and BN statistics from the fixture, in Model::params() / buffers() order.
  const Tensor p = f.readTensor("init_params"), b = f.readTensor("init_buffers");
  int64_t off = 0;
  for (Param* q : l.m->params()) {
    EXPECT_LE(off + q->value.numel(), p.numel()) << q->name;
    std::memcpy(q->value.data(), p.data() + off, q->value.bytes());
    off += q->value.numel();
  }
  EXPECT_EQ(off, p.numel()) << "parameter count differs from the fixture";
  off = 0;
  for (Buffer* q : l.m->buffers()) {
    std::memcpy(q->value.data(), b.data() + off, q->value.bytes());
    off += q->value.numel();
  }
  EXPECT_EQ(off, b.numel()) << "buffer count differs from the fixture";
  return l;
}

// Worst |ours - ref| / max |ref| over the model's tensors.
double worstRel(const std::vector<Tensor>& ours, const Tensor& ref) {
  double worst = 0;
  int64_t off = 0;
  for (const Tensor& t : ours) {
    double maxRef = 1e-12, err = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      maxRef = std::max(maxRef, std::abs(double(ref.data()[off + i])));
      err = std::max(err, std::abs(double(t.data()[i]) - ref.data()[off + i]));
    }
    worst = std::max(worst, err / maxRef);
    off += t.numel();
  }
  return worst;
}

TEST(InterlockingGolden, EverySchemeMatchesPyTorchAutograd) {
  const std::string path = std::string(SW_SOURCE_DIR) + "/tests/golden/interlocking_lenet.h5";
  ASSERT_TRUE(std::filesystem::exists(path)) << "regenerate with /usr/bin/python3 tools/make_interlocking_golden.py";
  h5::File f(path, h5::Access::kRead);
  const Tensor x = f.readTensor("x");
  const std::vector<int64_t> y = f.readInt64("y");
  const int steps = int(f.attrInt("/", "steps"));
  const int64_t batch = x.dim(1);
  struct S {
    const char* name;
    InterlockRule rule;
  };
  const std::vector<S> schemes{{"local", {.distance = 0}},
                               {"pairwise", {.distance = 1}},
                               {"3wise", {.distance = 2}},
                               {"global", {.distance = 3}},
                               {"sum", {.distance = 1, .mode = PairwiseMode::kSum}},
                               {"mean", {.distance = 1, .mode = PairwiseMode::kMean}}};
  std::vector<Tensor> refs;
  for (const S& s : schemes) {
    EXPECT_EQ(f.attrInt(std::string("/") + s.name, "distance"), s.rule.distance) << s.name;
    Lenet l = build(f);
    InterlockingLoop loop(*l.m, l.comps, s.rule);
    Optimizer opt(cpu(), l.m->params(),
                  OptimConfig{.momentum = float(f.attrDouble("/", "momentum")), .weightDecay = float(f.attrDouble("/", "weight_decay"))});
    const Tensor headLoss = f.readTensor(std::string(s.name) + "/head_loss");
    for (int t = 0; t < steps; ++t) {
      Tensor xt = x.slice(t, t + 1).reshape(Shape{batch, 1, 28, 28}).clone();
      Tensor yt = Tensor::empty(Shape{batch});
      for (int64_t i = 0; i < batch; ++i) yt.data<int32_t>()[i] = int32_t(y[size_t(t * batch + i)]);
      const LossResult r = loop.step(xt, yt);
      EXPECT_NEAR(r.loss, headLoss.data()[t], 1e-5 * std::abs(headLoss.data()[t])) << s.name << " step " << t;
      opt.step(float(f.attrDouble("/", "lr")));
      l.m->zeroGrad();
    }
    std::vector<Tensor> ps, bs;
    for (Param* p : l.m->params()) ps.push_back(p->value);
    for (Buffer* b : l.m->buffers()) bs.push_back(b->value);
    const Tensor refP = f.readTensor(std::string(s.name) + "/params"), refB = f.readTensor(std::string(s.name) + "/buffers");
    const double ep = worstRel(ps, refP), eb = worstRel(bs, refB);
    std::printf("[  worst   ] %-8s parameters %.1e, BN statistics %.1e (of each tensor's max |ref|)\n", s.name, ep, eb);
    EXPECT_LE(ep, kTol) << s.name;
    EXPECT_LE(eb, kTol) << s.name;
    refs.push_back(refP);
  }
  // The schemes are far apart on this scale, so matching one is not matching another.
  Lenet shapes = build(f);
  auto unflatten = [&](const Tensor& flat) {
    std::vector<Tensor> v;
    int64_t off = 0;
    for (Param* p : shapes.m->params()) {
      v.push_back(Tensor::empty(p->value.shape()));
      std::memcpy(v.back().data(), flat.data() + off, v.back().bytes());
      off += p->value.numel();
    }
    return v;
  };
  for (size_t a = 0; a < schemes.size(); ++a)
    for (size_t b = a + 1; b < schemes.size(); ++b)
      EXPECT_GT(worstRel(unflatten(refs[a]), refs[b]), 100 * kTol) << schemes[a].name << " vs " << schemes[b].name;
}

}  // namespace
}  // namespace sw
