// Every CudaBackend op, forward and backward, against the CPU backend (the reference) on random
// inputs, plus one whole SGD training step of lenet and resnet18 built on each backend from the
// same seed. Every test but the allocator's binning skips cleanly without a CUDA device.
//
// Tolerances (max |gpu - cpu| <= rtol * max |cpu| + 1e-6 per tensor), all fp32 with TF32 off:
//   kExact  1e-6: elementwise ops, pooling and copies (same float operations, same order)
//   kReduce 1e-5: reductions and GEMM (summation order differs)
//   kConv   1e-4: cuDNN convolutions and batch norm (different algorithms and orders)
//   kStep   1e-4 parameters after one step, 2e-3 gradients (a whole network compounds orders)
// The fused ops: coupling and difference target are exact (one float add per element); LARS,
// weight prediction and the DTP upstream gradients kExact; DTP losses 1e-10 relative (double
// sums in another order); the first target kReduce (device expf).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "TestData.h"
#include "backend/Backend.h"
#include "backend/cuda/CudaBackend.h"
#include "backend/cuda/DeviceAllocator.h"
#include "nn/Layer.h"
#include "nn/Loss.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"

namespace sw {
namespace {

using testdata::labelsFor;
using testdata::randn;

constexpr double kExact = 1e-6, kReduce = 1e-5, kConv = 1e-4;

// Distinct values in random order (no ties inside a max-pool window or a logits row).
Tensor distinct(const Shape& s, uint64_t seed) {
  Rng r(seed);
  Tensor t = Tensor::empty(s);
  std::vector<int64_t> perm(static_cast<size_t>(t.numel()));
  std::iota(perm.begin(), perm.end(), 0);
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[r.below(i)]);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = 0.01f * (perm[i] - t.numel() / 2.f);
  return t;
}

::testing::AssertionResult close(const Tensor& got, const Tensor& want, double rtol) {
  if (got.numel() != want.numel())
    return ::testing::AssertionFailure() << "sizes " << got.shape().str() << " vs " << want.shape().str();
  double maxd = 0, maxw = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = std::abs(double(got.data()[i]) - double(want.data()[i]));
    if (!(d <= maxd)) maxd = d, at = i;  // NaN counts as the largest difference
    maxw = std::max(maxw, double(std::abs(want.data()[i])));
  }
  if (maxd <= rtol * maxw + 1e-6) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << maxd << " at " << at << " (got "
                                       << got.data()[at] << ", want " << want.data()[at]
                                       << "), max |want| " << maxw << ", rtol " << rtol;
}

bool sameInts(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.data(), b.data(), a.bytes()) == 0;
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    cpu_ = makeCpuBackend(2, CpuConv::kIm2col);
    gpu_ = makeCudaBackend(0);
  }
  Tensor up(const Tensor& h) { return gpu_->fromHost(h); }
  Tensor down(const Tensor& d) { return gpu_->toHost(d); }
  Tensor gpuEmpty(const Shape& s) { return gpu_->empty(s); }
  std::unique_ptr<Backend> cpu_, gpu_;
};

TEST(CudaAllocator, BinsRoundUpWithBoundedWaste) {
  EXPECT_EQ(DeviceAllocator::binSize(0), 512u);
  EXPECT_EQ(DeviceAllocator::binSize(1), 512u);
  EXPECT_EQ(DeviceAllocator::binSize(512), 512u);
  EXPECT_EQ(DeviceAllocator::binSize(513), 1024u);
  EXPECT_EQ(DeviceAllocator::binSize(1 << 20), size_t(1) << 20);
  for (size_t b : {size_t(1000), size_t(777777), size_t(3) << 20, size_t(123456789), size_t(5) << 30}) {
    const size_t bin = DeviceAllocator::binSize(b);
    EXPECT_GE(bin, b);
    EXPECT_LE(double(bin - b), 0.125 * double(b) + 512) << b;
    EXPECT_EQ(DeviceAllocator::binSize(bin), bin) << "a bin is its own bin";
  }
}

TEST_F(CudaBackendTest, CopiesFillAndCacheReuse) {
  const Shape s{3, 5, 7};
  const Tensor h = randn(s, 1);
  Tensor d = up(h);
  EXPECT_EQ(d.device(), Device::cuda(0));
  Tensor d2 = gpuEmpty(s);
  gpu_->copy(d, d2);
  EXPECT_TRUE(close(down(d2), h, 0));
  Tensor z = gpu_->zeros(s);
  EXPECT_TRUE(close(down(z), Tensor::zeros(s), 0));
  gpu_->fill(z, 2.5f);
  EXPECT_TRUE(close(down(z), Tensor::full(s, 2.5f), 0));
  // A freed block of the same bin comes back from the cache.
  const void* p = d2.data();
  d2 = Tensor();
  Tensor d3 = gpuEmpty(s);
  EXPECT_EQ(d3.data(), p);
  // Host tensors are rejected with a DeviceError, not a fault on the GPU.
  Tensor hostY = Tensor::empty(s);
  EXPECT_THROW(gpu_->scale(hostY, 2.f), DeviceError);
}

TEST_F(CudaBackendTest, GemmAllTransposes) {
  const int64_t m = 37, n = 53, k = 71;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const Tensor a = randn(ta ? Shape{k, m} : Shape{m, k}, 2), b = randn(tb ? Shape{n, k} : Shape{k, n}, 3);
      const Tensor c0 = randn(Shape{m, n}, 4);
      const GemmOpts o{ta, tb, 0.7f, 0.3f};
      Tensor cc = c0.clone(), gc = up(c0);
      cpu_->gemm(a, b, cc, o);
      gpu_->gemm(up(a), up(b), gc, o);
      EXPECT_TRUE(close(down(gc), cc, kReduce)) << "transA " << ta << " transB " << tb;
    }
}

TEST_F(CudaBackendTest, BiasAddAndGrad) {
  for (const Shape& s : {Shape{9, 13}, Shape{4, 6, 5, 7}}) {
    const Tensor y0 = randn(s, 5), bias = randn(Shape{s[1]}, 6), dy = randn(s, 7), db0 = randn(Shape{s[1]}, 8);
    Tensor cy = y0.clone(), gy = up(y0);
    cpu_->addBias(cy, bias);
    gpu_->addBias(gy, up(bias));
    EXPECT_TRUE(close(down(gy), cy, kExact));
    for (Accumulate acc : {Accumulate::kNo, Accumulate::kYes}) {
      Tensor cdb = db0.clone(), gdb = up(db0);
      cpu_->biasGrad(dy, cdb, acc);
      gpu_->biasGrad(up(dy), gdb, acc);
      EXPECT_TRUE(close(down(gdb), cdb, kReduce));
    }
  }
}

struct ConvCase {
  Shape x;
  int64_t k, r, stride, pad;
};

TEST_F(CudaBackendTest, ConvolutionForwardAndBackward) {
  const std::vector<ConvCase> cases = {{Shape{2, 3, 16, 16}, 8, 3, 1, 1}, {Shape{3, 4, 12, 12}, 6, 5, 1, 0},
                                       {Shape{2, 8, 15, 15}, 16, 3, 2, 1}, {Shape{2, 16, 8, 8}, 8, 1, 2, 0},
                                       {Shape{4, 1, 28, 28}, 6, 5, 1, 2}};
  uint64_t seed = 10;
  for (const ConvCase& cc : cases) {
    const ConvGeom g = ConvGeom::make(cc.x, cc.k, cc.r, cc.r, cc.stride, cc.pad);
    SCOPED_TRACE(g.key());
    const Shape ws{g.k, g.c, g.r, g.s}, ys{g.n, g.k, g.oh, g.ow};
    const Tensor x = randn(cc.x, ++seed), w = randn(ws, ++seed, 0.3f), b = randn(Shape{g.k}, ++seed);
    const Tensor dy = randn(ys, ++seed), dx0 = randn(cc.x, ++seed), dw0 = randn(ws, ++seed), db0 = randn(Shape{g.k}, ++seed);
    Tensor cy = Tensor::empty(ys), gy = gpuEmpty(ys);
    cpu_->convForward(x, w, b, cy, g);
    gpu_->convForward(up(x), up(w), up(b), gy, g);
    EXPECT_TRUE(close(down(gy), cy, kConv)) << "forward";
    for (Accumulate acc : {Accumulate::kNo, Accumulate::kYes}) {
      Tensor cdx = dx0.clone(), gdx = up(dx0);
      cpu_->convBackwardData(dy, w, cdx, g, acc);
      gpu_->convBackwardData(up(dy), up(w), gdx, g, acc);
      EXPECT_TRUE(close(down(gdx), cdx, kConv)) << "backward data, accumulate " << int(acc);
      Tensor cdw = dw0.clone(), gdw = up(dw0), cdb = db0.clone(), gdb = up(db0);
      cpu_->convBackwardFilter(x, dy, cdw, &cdb, g, acc);
      gpu_->convBackwardFilter(up(x), up(dy), gdw, &gdb, g, acc);
      EXPECT_TRUE(close(down(gdw), cdw, kConv)) << "backward filter, accumulate " << int(acc);
      EXPECT_TRUE(close(down(gdb), cdb, kReduce)) << "bias grad, accumulate " << int(acc);
    }
  }
}

TEST_F(CudaBackendTest, Activations) {
  const Shape s{4, 33, 17};
  const Tensor x = randn(s, 20, 3.f), dy = randn(s, 21);
  for (Act a : {Act::kIdentity, Act::kRelu, Act::kElu, Act::kTanh, Act::kSigmoid}) {
    SCOPED_TRACE(int(a));
    Tensor cy = Tensor::empty(s), cdx = Tensor::empty(s), gy = gpuEmpty(s), gdx = gpuEmpty(s);
    const Tensor gx = up(x);
    cpu_->actForward(a, 0.7f, x, cy);
    cpu_->actBackward(a, 0.7f, x, cy, dy, cdx);
    gpu_->actForward(a, 0.7f, gx, gy);
    gpu_->actBackward(a, 0.7f, gx, gy, up(dy), gdx);
    // Device expf/tanhf differ from the CPU's vector math by a few ulp.
    EXPECT_TRUE(close(down(gy), cy, 4e-6));
    EXPECT_TRUE(close(down(gdx), cdx, 4e-6));
  }
}

TEST_F(CudaBackendTest, MaxPoolUnpoolAndAvgPool) {
  struct PoolCase {
    Shape x;
    int64_t kernel, stride, pad;
  };
  for (const PoolCase& pc : {PoolCase{Shape{2, 3, 8, 8}, 2, 2, 0}, PoolCase{Shape{2, 4, 9, 11}, 3, 2, 1},
                             PoolCase{Shape{1, 2, 7, 7}, 3, 1, 1}, PoolCase{Shape{2, 2, 10, 10}, 2, 3, 0}}) {
    const PoolGeom g = PoolGeom::make(pc.x, pc.kernel, pc.stride, pc.pad);
    SCOPED_TRACE(pc.x.str() + " k" + std::to_string(pc.kernel) + " s" + std::to_string(pc.stride));
    const Shape ys{g.n, g.c, g.oh, g.ow};
    const Tensor x = distinct(pc.x, 30), dy = randn(ys, 31), dxIn = randn(pc.x, 32);
    Tensor cy = Tensor::empty(ys), ci = Tensor::empty(ys), gy = gpuEmpty(ys), gi = gpuEmpty(ys);
    cpu_->maxPoolForward(x, cy, ci, g);
    gpu_->maxPoolForward(up(x), gy, gi, g);
    EXPECT_TRUE(close(down(gy), cy, 0));
    const Tensor giHost = down(gi);
    EXPECT_TRUE(sameInts(giHost, ci)) << "argmax indices";
    Tensor cdx = Tensor::empty(pc.x), gdx = gpuEmpty(pc.x);
    cpu_->maxPoolBackward(dy, ci, cdx, g);
    gpu_->maxPoolBackward(up(dy), gi, gdx, g);
    EXPECT_TRUE(close(down(gdx), cdx, kExact)) << "max pool backward";
    Tensor cu = Tensor::empty(pc.x), gu = gpuEmpty(pc.x);
    cpu_->maxUnpoolForward(dy, ci, cu, g);
    gpu_->maxUnpoolForward(up(dy), gi, gu, g);
    EXPECT_TRUE(close(down(gu), cu, kExact)) << "unpool forward";
    Tensor cub = Tensor::empty(ys), gub = gpuEmpty(ys);
    cpu_->maxUnpoolBackward(dxIn, ci, cub, g);
    gpu_->maxUnpoolBackward(up(dxIn), gi, gub, g);
    EXPECT_TRUE(close(down(gub), cub, 0)) << "unpool backward";
    Tensor ca = Tensor::empty(ys), ga = gpuEmpty(ys), cad = Tensor::empty(pc.x), gad = gpuEmpty(pc.x);
    cpu_->avgPoolForward(x, ca, g);
    gpu_->avgPoolForward(up(x), ga, g);
    EXPECT_TRUE(close(down(ga), ca, kExact)) << "avg pool forward";
    cpu_->avgPoolBackward(dy, cad, g);
    gpu_->avgPoolBackward(up(dy), gad, g);
    EXPECT_TRUE(close(down(gad), cad, kExact)) << "avg pool backward";
  }
}

TEST_F(CudaBackendTest, AdaptiveAvgPool) {
  for (const Shape& out : {Shape{2, 3, 1, 1}, Shape{2, 3, 3, 3}, Shape{2, 3, 4, 2}}) {
    const Shape in{2, 3, 7, 5};
    const Tensor x = randn(in, 40), dy = randn(out, 41);
    Tensor cy = Tensor::empty(out), gy = gpuEmpty(out), cdx = Tensor::empty(in), gdx = gpuEmpty(in);
    cpu_->adaptiveAvgPoolForward(x, cy);
    gpu_->adaptiveAvgPoolForward(up(x), gy);
    EXPECT_TRUE(close(down(gy), cy, kExact)) << out.str();
    cpu_->adaptiveAvgPoolBackward(dy, cdx);
    gpu_->adaptiveAvgPoolBackward(up(dy), gdx);
    EXPECT_TRUE(close(down(gdx), cdx, kExact)) << out.str();
  }
}

TEST_F(CudaBackendTest, BatchNormTrainEvalBackward) {
  for (const Shape& s : {Shape{8, 6, 5, 5}, Shape{16, 12}}) {
    SCOPED_TRACE(s.str());
    const int64_t c = s[1];
    const Tensor x = randn(s, 50, 2.f), gamma = randn(Shape{c}, 51), beta = randn(Shape{c}, 52), dy = randn(s, 53);
    const Tensor rm0 = randn(Shape{c}, 54, 0.1f), rv0 = Tensor::full(Shape{c}, 1.3f);
    const BatchNormOpts o{0.1f, 1e-5f};
    Tensor cy = Tensor::empty(s), cm = Tensor::empty(Shape{c}), ci = Tensor::empty(Shape{c});
    Tensor crm = rm0.clone(), crv = rv0.clone();
    cpu_->batchNormForwardTrain(x, gamma, beta, cy, cm, ci, crm, crv, o);
    Tensor gx = up(x), gg = up(gamma), gb = up(beta), gy = gpuEmpty(s), gm = gpuEmpty(Shape{c}), gi = gpuEmpty(Shape{c});
    Tensor grm = up(rm0), grv = up(rv0);
    gpu_->batchNormForwardTrain(gx, gg, gb, gy, gm, gi, grm, grv, o);
    EXPECT_TRUE(close(down(gy), cy, kConv)) << "y";
    EXPECT_TRUE(close(down(gm), cm, kConv)) << "saved mean";
    EXPECT_TRUE(close(down(gi), ci, kConv)) << "saved inverse std";
    EXPECT_TRUE(close(down(grm), crm, kConv)) << "running mean";
    EXPECT_TRUE(close(down(grv), crv, kConv)) << "running variance (unbiased)";
    for (Accumulate acc : {Accumulate::kNo, Accumulate::kYes}) {
      const Tensor dg0 = randn(Shape{c}, 55), db0 = randn(Shape{c}, 56);
      Tensor cdx = Tensor::empty(s), cdg = dg0.clone(), cdb = db0.clone();
      Tensor gdx = gpuEmpty(s), gdg = up(dg0), gdb = up(db0);
      cpu_->batchNormBackward(x, dy, gamma, cm, ci, cdx, cdg, cdb, acc);
      gpu_->batchNormBackward(gx, up(dy), gg, gm, gi, gdx, gdg, gdb, acc);
      EXPECT_TRUE(close(down(gdx), cdx, kConv)) << "dx";
      EXPECT_TRUE(close(down(gdg), cdg, kConv)) << "dgamma";
      EXPECT_TRUE(close(down(gdb), cdb, kConv)) << "dbeta";
    }
    Tensor undefinedDx, gdg = gpuEmpty(Shape{c}), gdb = gpuEmpty(Shape{c});
    EXPECT_NO_THROW(gpu_->batchNormBackward(gx, up(dy), gg, gm, gi, undefinedDx, gdg, gdb, Accumulate::kNo));
    Tensor cye = Tensor::empty(s), gye = gpuEmpty(s);
    cpu_->batchNormForwardEval(x, gamma, beta, cye, crm, crv, o);
    gpu_->batchNormForwardEval(gx, gg, gb, gye, up(crm), up(crv), o);
    EXPECT_TRUE(close(down(gye), cye, kConv)) << "eval";
  }
}

TEST_F(CudaBackendTest, DropoutDrawsTheCpuMask) {
  const Shape s{5, 64, 3};
  const Tensor x = randn(s, 60);
  Rng rc(7), rg(7);
  Tensor cy = Tensor::empty(s), cm = Tensor::empty(s), gy = gpuEmpty(s), gm = gpuEmpty(s);
  cpu_->dropoutForward(x, cy, cm, 0.3f, rc);
  gpu_->dropoutForward(up(x), gy, gm, 0.3f, rg);
  EXPECT_TRUE(close(down(gm), cm, 0));
  EXPECT_TRUE(close(down(gy), cy, 0));
  EXPECT_EQ(rc.uniform(), rg.uniform()) << "both drew the same number of values";
}

TEST_F(CudaBackendTest, SoftmaxCrossEntropyAndAccuracy) {
  for (int64_t k : {10, 1000}) {
    const int64_t n = 33;
    SCOPED_TRACE(k);
    const Tensor logits = distinct(Shape{n, k}, 70), labels = labelsFor(n, k, 71);
    Tensor cp = Tensor::empty(Shape{n, k}), gp = gpuEmpty(Shape{n, k});
    const float cl = cpu_->softmaxXentForward(logits, labels, cp);
    const Tensor gl = up(logits);
    const float gloss = gpu_->softmaxXentForward(gl, labels, gp);
    EXPECT_NEAR(gloss, cl, kReduce * std::abs(cl));
    EXPECT_TRUE(close(down(gp), cp, kReduce));
    // Labels already on the device give the same result.
    const Tensor glab = up(labels);
    EXPECT_NEAR(gpu_->softmaxXentForward(gl, glab, gp), cl, kReduce * std::abs(cl));
    Tensor cd = Tensor::empty(Shape{n, k}), gd = gpuEmpty(Shape{n, k});
    cpu_->softmaxXentBackward(cp, labels, cd, 0.25f);
    gpu_->softmaxXentBackward(gp, glab, gd, 0.25f);
    EXPECT_TRUE(close(down(gd), cd, kReduce));
    EXPECT_EQ(gpu_->countCorrect(gl, labels), cpu_->countCorrect(logits, labels));
    // Make a third of the rows correct, so the count is not trivially 0.
    Tensor fixed = labels.clone();
    for (int64_t i = 0; i < n; i += 3) {
      const float* row = logits.data() + i * k;
      fixed.data<int32_t>()[i] = static_cast<int32_t>(std::max_element(row, row + k) - row);
    }
    const int64_t want = cpu_->countCorrect(logits, fixed);
    EXPECT_GE(want, n / 3);
    EXPECT_EQ(gpu_->countCorrect(gl, fixed), want);
    Tensor bad = labels.clone();
    bad.data<int32_t>()[5] = static_cast<int32_t>(k);
    EXPECT_THROW(gpu_->softmaxXentForward(gl, bad, gp), DataError);
  }
}

TEST_F(CudaBackendTest, ChannelsElementwiseAndReductions) {
  const Shape whole{3, 7, 4, 5}, sa{3, 3, 4, 5}, sb{3, 4, 4, 5};
  const Tensor x = randn(whole, 80);
  Tensor ca = Tensor::empty(sa), cb = Tensor::empty(sb), ga = gpuEmpty(sa), gb = gpuEmpty(sb);
  cpu_->splitChannels(x, ca, cb);
  gpu_->splitChannels(up(x), ga, gb);
  EXPECT_TRUE(close(down(ga), ca, 0));
  EXPECT_TRUE(close(down(gb), cb, 0));
  Tensor gx = gpuEmpty(whole);
  gpu_->concatChannels(ga, gb, gx);
  EXPECT_TRUE(close(down(gx), x, 0));

  const Shape s{1000, 37};
  const Tensor a = randn(s, 81), b = randn(s, 82);
  Tensor co = Tensor::empty(s), go = gpuEmpty(s);
  cpu_->add(a, b, co);
  gpu_->add(up(a), up(b), go);
  EXPECT_TRUE(close(down(go), co, 0));
  cpu_->mul(a, b, co);
  gpu_->mul(up(a), up(b), go);
  EXPECT_TRUE(close(down(go), co, 0));
  Tensor cy = b.clone(), gy = up(b);
  cpu_->axpy(-0.3f, a, cy);
  gpu_->axpy(-0.3f, up(a), gy);
  EXPECT_TRUE(close(down(gy), cy, kExact));
  cpu_->scale(cy, 1.7f);
  gpu_->scale(gy, 1.7f);
  EXPECT_TRUE(close(down(gy), cy, kExact));
  for (int64_t n : {1, 1000, 1 << 20}) {
    const Tensor t = randn(Shape{n}, 83 + n);
    const Tensor gt = up(t);
    EXPECT_NEAR(gpu_->sum(gt), cpu_->sum(t), 1e-9 * n + 1e-9) << n;
    EXPECT_NEAR(gpu_->sumSquares(gt), cpu_->sumSquares(t), 1e-9 * n + 1e-9) << n;
  }
}

TEST_F(CudaBackendTest, FusedOptimizerUpdates) {
  const Shape s{3001};
  const Tensor p0 = randn(s, 90), g = randn(s, 91, 0.1f);
  for (bool nesterov : {false, true}) {
    Tensor cp = p0.clone(), cb = Tensor::zeros(s), gp = up(p0), gb = gpu_->zeros(s);
    const SgdOpts o{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .weightDecay = 1e-3f, .nesterov = nesterov};
    const Tensor gg = up(g);
    for (int step = 0; step < 3; ++step) {
      cpu_->sgdUpdate(cp, g, cb, o, step == 0);
      gpu_->sgdUpdate(gp, gg, gb, o, step == 0);
    }
    EXPECT_TRUE(close(down(gp), cp, kExact));
  }
  for (bool ams : {false, true}) {
    Tensor cp = p0.clone(), cm = Tensor::zeros(s), cv = Tensor::zeros(s), cvm = Tensor::zeros(s);
    Tensor gp = up(p0), gm = gpu_->zeros(s), gv = gpu_->zeros(s), gvm = gpu_->zeros(s);
    const Tensor gg = up(g);
    for (int step = 1; step <= 3; ++step) {
      const AdamOpts o{.lr = 1e-2f, .weightDecay = 1e-2f, .amsgrad = ams, .step = step};
      cpu_->adamUpdate(cp, g, cm, cv, cvm, o);
      gpu_->adamUpdate(gp, gg, gm, gv, gvm, o);
    }
    EXPECT_TRUE(close(down(gp), cp, kExact));
  }
}

TEST_F(CudaBackendTest, FusedLars) {
  const Shape s{3001};
  const Tensor p0 = randn(s, 92), g0 = randn(s, 93, 0.1f);
  for (float wd : {0.f, 1e-3f})
    for (bool nesterov : {false, true}) {
      SCOPED_TRACE("wd " + std::to_string(wd) + " nesterov " + std::to_string(nesterov));
      const LarsOpts o{.sgd = {.lr = 0.5f, .momentum = 0.9f, .dampening = 0.1f, .weightDecay = wd, .nesterov = nesterov},
                       .trust = 0.02f, .eps = 1e-8f};
      Tensor cp = p0.clone(), cb = Tensor::zeros(s), gp = up(p0), gb = gpu_->zeros(s);
      for (int step = 0; step < 3; ++step) {
        Tensor cg = g0.clone(), gg = up(g0);
        cpu_->larsUpdate(cp, cg, cb, o, step == 0);
        gpu_->larsUpdate(gp, gg, gb, o, step == 0);
        EXPECT_TRUE(close(down(gg), cg, kExact)) << "clipped gradient, step " << step;
      }
      EXPECT_TRUE(close(down(gp), cp, kExact)) << "weights";
      EXPECT_TRUE(close(down(gb), cb, kExact)) << "momentum";
    }
  // A zero gradient is not clipped (and gets no decay), as on the CPU.
  Tensor cp = p0.clone(), cg = Tensor::zeros(s), cb = Tensor::zeros(s), gp = up(p0), gg = gpu_->zeros(s), gb = gpu_->zeros(s);
  const LarsOpts o{.sgd = {.lr = 0.1f, .momentum = 0.9f, .weightDecay = 0.1f}};
  cpu_->larsUpdate(cp, cg, cb, o, true);
  gpu_->larsUpdate(gp, gg, gb, o, true);
  EXPECT_TRUE(close(down(gp), cp, 0));
}

TEST_F(CudaBackendTest, FusedWeightPrediction) {
  const Shape s{4097};
  const Tensor w = randn(s, 94), buf = randn(s, 95, 0.1f), d = randn(s, 96, 0.1f);
  for (int withBuf = 0; withBuf < 2; ++withBuf)
    for (int withD = 0; withD < 2; ++withD) {
      Tensor co = Tensor::empty(s), go = gpuEmpty(s);
      cpu_->predictWeights(w, withBuf ? buf : Tensor(), withD ? d : Tensor(), 0.9f, 0.15f, co);
      gpu_->predictWeights(up(w), withBuf ? up(buf) : Tensor(), withD ? up(d) : Tensor(), 0.9f, 0.15f, go);
      EXPECT_TRUE(close(down(go), co, kExact)) << "buf " << withBuf << " lastD " << withD;
    }
}

TEST_F(CudaBackendTest, FusedCouplingAndHalfSplit) {
  const Shape pair{3, 10, 5, 7}, hs{3, 5, 5, 7};
  const Tensor x = randn(pair, 97), f = randn(hs, 98);
  for (Coupling dir : {Coupling::kForward, Coupling::kInverse}) {
    Tensor co = Tensor::empty(pair), go = gpuEmpty(pair);
    cpu_->coupling(dir, x, f, co);
    gpu_->coupling(dir, up(x), up(f), go);
    EXPECT_TRUE(close(down(go), co, 0)) << "direction " << int(dir);
  }
  Tensor ca = Tensor::empty(hs), ga = gpuEmpty(hs), cb = Tensor::empty(hs), gb = gpuEmpty(hs), none;
  cpu_->splitChannels(x, ca, none);
  gpu_->splitChannels(up(x), ga, none);
  EXPECT_TRUE(close(down(ga), ca, 0)) << "first half alone";
  cpu_->splitChannels(x, none, cb);
  gpu_->splitChannels(up(x), none, gb);
  EXPECT_TRUE(close(down(gb), cb, 0)) << "second half alone";
}

// The first reversible block of a small RevNet (couplings whose F is conv-bn-relu-conv-bn) forward,
// backward and inverse on both backends.
TEST_F(CudaBackendTest, ReversibleBlock) {
  const ModelSpec spec{.name = "revnet18", .width = 4};
  auto cm = buildModel(*cpu_, spec, Shape{3, 16, 16}, 10, /*seed=*/5);
  auto gm = buildModel(*gpu_, spec, Shape{3, 16, 16}, 10, /*seed=*/5);
  std::vector<Param*> cps = cm->params(), gps = gm->params();
  for (size_t i = 0; i < cps.size(); ++i) gpu_->copy(cps[i]->value, gps[i]->value);
  std::vector<Buffer*> cbs = cm->buffers(), gbs = gm->buffers();
  for (size_t i = 0; i < cbs.size(); ++i) gpu_->copy(cbs[i]->value, gbs[i]->value);
  const Tensor x = randn(Shape{4, 3, 16, 16}, 99);
  for (size_t b = 0; b < cm->numBlocks(); ++b) {
    if (!cm->block(b).reversible()) continue;
    SCOPED_TRACE(cm->blockName(b));
    Ctx cp, gp, cc, gc, ci, gi;
    const Tensor cin = cm->forward(x, cp, Mode::kEval, {0, b}), gin = gm->forward(up(x), gp, Mode::kEval, {0, b});
    const Tensor cy = cm->block(b).forward(cin, cc, Mode::kTrain), gy = gm->block(b).forward(gin, gc, Mode::kTrain);
    EXPECT_TRUE(close(down(gy), cy, kConv)) << "forward";
    const Tensor dy = randn(cy.shape(), 100);
    const Tensor cdx = cm->block(b).backward(dy, cc, InputGrad::kNeeded);
    const Tensor gdx = gm->block(b).backward(up(dy), gc, InputGrad::kNeeded);
    EXPECT_TRUE(close(down(gdx), cdx, kConv)) << "backward";
    const Tensor cx = cm->block(b).inverse(cy, ci), gx = gm->block(b).inverse(up(cy), gi);
    EXPECT_TRUE(close(down(gx), cx, kConv)) << "inverse";
    EXPECT_TRUE(close(down(gx), cin, kConv)) << "the inverse rebuilds the block's input";
    return;
  }
  FAIL() << "revnet18 has no reversible block";
}

TEST_F(CudaBackendTest, DtpLossesAndTargets) {
  const Shape s{16, 8, 9, 9};
  const Tensor dx = randn(s, 101, 0.1f), dT = randn(s, 102), dH = randn(s, 103);
  for (bool withGrad : {false, true}) {
    Tensor cut = Tensor::empty(s), cuh = dH.clone(), gut = gpuEmpty(s), guh = up(dH);
    const double cl = cpu_->dtpDrlLoss(dx, dT, cuh, 0.5f, withGrad ? &cut : nullptr, withGrad ? &cuh : nullptr);
    const double gl = gpu_->dtpDrlLoss(up(dx), up(dT), guh, 0.5f, withGrad ? &gut : nullptr, withGrad ? &guh : nullptr);
    EXPECT_NEAR(gl, cl, 1e-10 * std::abs(cl)) << "L-DRL loss";
    if (withGrad) {
      EXPECT_TRUE(close(down(gut), cut, kExact)) << "upstream of r~";
      EXPECT_TRUE(close(down(guh), cuh, kExact)) << "upstream of r^, in place";
    }
  }
  const Tensor h = randn(s, 104), gt = randn(s, 105), gh = randn(s, 106);
  Tensor ct = Tensor::empty(s), gtt = gpuEmpty(s);
  cpu_->dtpDifferenceTarget(h, gt, gh, ct);
  gpu_->dtpDifferenceTarget(up(h), up(gt), up(gh), gtt);
  EXPECT_TRUE(close(down(gtt), ct, 0)) << "difference target";
  Tensor cg = Tensor::empty(s), gg = gpuEmpty(s);
  const double cll = cpu_->dtpLocalLoss(h, ct, cg), gll = gpu_->dtpLocalLoss(up(h), gtt, gg);
  EXPECT_NEAR(gll, cll, 1e-10 * std::abs(cll)) << "local loss";
  EXPECT_TRUE(close(down(gg), cg, kExact)) << "local loss gradient";
  for (int64_t k : {10, 1000}) {
    const int64_t n = 33;
    const Tensor z = distinct(Shape{n, k}, 107), labels = labelsFor(n, k, 108);
    Tensor cz = Tensor::empty(Shape{n, k}), gz = gpuEmpty(Shape{n, k});
    const LogitStats cs = cpu_->dtpFirstTarget(z, labels, 0.7f, cz);
    const LogitStats gs = gpu_->dtpFirstTarget(up(z), up(labels), 0.7f, gz);
    EXPECT_NEAR(gs.ce, cs.ce, kReduce * std::abs(cs.ce)) << k;
    EXPECT_EQ(gs.correct, cs.correct) << k;
    EXPECT_TRUE(close(down(gz), cz, kReduce)) << "first target, " << k << " classes";
    Tensor bad = labels.clone();
    bad.data<int32_t>()[2] = static_cast<int32_t>(k);
    EXPECT_THROW(gpu_->dtpFirstTarget(up(z), bad, 0.7f, gz), DataError);
  }
}

// Host <-> device copies through the pinned staging blocks: many uploads queued back to back from
// one host buffer that changes right after each copy returns, reads of every size, and transfers
// larger than the pinned limit (pageable fallback). The pinned memory held stays within the limit.
TEST_F(CudaBackendTest, PinnedUploadsAndDownloads) {
  CudaOptions o;
  o.maxPinnedBytes = size_t(1) << 20;
  auto be = makeCudaBackend(0, o);
  auto& cuda = dynamic_cast<CudaBackend&>(*be);
  Tensor host = Tensor::empty(Shape{300000});  // 1.2 MB: above the limit
  std::vector<Tensor> dev;
  std::vector<Tensor> want;
  for (int64_t n : {1, 7, 1000, 16384, 65537, 100000, 300000, 3, 100000}) {
    Tensor h = host.slice(0, n);
    for (int64_t i = 0; i < n; ++i) h.data()[i] = float(n + i);
    want.push_back(h.clone());
    dev.push_back(be->fromHost(h));
    for (int64_t i = 0; i < n; ++i) h.data()[i] = -1.f;  // the upload must already have its copy
    EXPECT_LE(cuda.pinnedBytes(), o.maxPinnedBytes);
  }
  for (size_t i = 0; i < dev.size(); ++i) EXPECT_TRUE(close(be->toHost(dev[i]), want[i], 0)) << i;
  EXPECT_LE(cuda.pinnedBytes(), o.maxPinnedBytes);
  // Work queued before a read is finished before the read returns.
  Tensor acc = be->zeros(Shape{100000});
  for (int r = 0; r < 20; ++r) be->axpy(1.f, dev[5], acc);
  const Tensor sum = be->toHost(acc);
  for (int64_t i = 0; i < 100000; i += 997) ASSERT_EQ(sum.data()[i], 20.f * float(100000 + i)) << i;
}

// One SGD step of a zoo model on each backend from the same parameters and batch.
void trainStepMatches(Backend& cpu, Backend& gpu, const ModelSpec& spec, const Shape& sample, int64_t n) {
  auto cm = buildModel(cpu, spec, sample, 10, /*seed=*/3);
  auto gm = buildModel(gpu, spec, sample, 10, /*seed=*/3);
  std::vector<Param*> cps = cm->params(), gps = gm->params();
  ASSERT_EQ(cps.size(), gps.size());
  // Same seed gives the same host-drawn initial values; copy anyway so the check does not rely on it.
  for (size_t i = 0; i < cps.size(); ++i) gpu.copy(cps[i]->value, gps[i]->value);
  std::vector<Buffer*> cbs = cm->buffers(), gbs = gm->buffers();
  ASSERT_EQ(cbs.size(), gbs.size());
  for (size_t i = 0; i < cbs.size(); ++i) gpu.copy(cbs[i]->value, gbs[i]->value);

  std::vector<int64_t> dims{n};
  for (int i = 0; i < sample.rank(); ++i) dims.push_back(sample[i]);
  const Shape xs(dims);
  const Tensor x = randn(xs, 100), labels = labelsFor(n, 10, 101);
  OptimConfig oc;
  oc.momentum = 0.9f;
  oc.weightDecay = 5e-4f;
  Optimizer copt(cpu, cps, oc), gopt(gpu, gps, oc);
  float losses[2];
  for (int side = 0; side < 2; ++side) {
    Backend& be = side ? gpu : cpu;
    Model& m = side ? *gm : *cm;
    m.zeroGrad();
    Ctx slot, lctx;
    const Tensor logits = m.forward(side ? be.fromHost(x) : x, slot, Mode::kTrain);
    SoftmaxCrossEntropy xent(be);
    losses[side] = xent.forward(logits, labels, lctx).loss;
    m.backward(xent.backward(lctx), slot, {}, InputGrad::kSkip);
  }
  EXPECT_NEAR(losses[1], losses[0], 1e-4 * std::abs(losses[0])) << "loss";
  for (size_t i = 0; i < cps.size(); ++i)
    EXPECT_TRUE(close(gpu.toHost(gps[i]->grad), cps[i]->grad, 2e-3)) << "gradient of " << cps[i]->name;
  copt.step(0.05f);
  gopt.step(0.05f);
  for (size_t i = 0; i < cps.size(); ++i)
    EXPECT_TRUE(close(gpu.toHost(gps[i]->value), cps[i]->value, 1e-4)) << "after the step: " << cps[i]->name;
  for (size_t i = 0; i < cbs.size(); ++i)
    EXPECT_TRUE(close(gpu.toHost(gbs[i]->value), cbs[i]->value, kConv)) << "buffer " << cbs[i]->name;
}

TEST_F(CudaBackendTest, LenetTrainStepMatchesCpu) {
  trainStepMatches(*cpu_, *gpu_, ModelSpec{.name = "lenet"}, Shape{1, 28, 28}, 16);
}

TEST_F(CudaBackendTest, Resnet18TrainStepMatchesCpu) {
  trainStepMatches(*cpu_, *gpu_, ModelSpec{.name = "resnet18", .width = 16}, Shape{3, 32, 32}, 8);
}

}  // namespace
}  // namespace sw
