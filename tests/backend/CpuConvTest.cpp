// The CPU backend's two convolution algorithms (oneDNN's direct kernels with reorders to blocked
// layouts, and batched im2col + GEMM) agree on forward, both gradients and accumulation, on the
// shapes of our conv nets (channel counts that are and are not multiples of the 16-wide blocks,
// strides, paddings, 1x1 and 5x5 kernels, a batch that does not fill an im2col group).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "backend/Backend.h"
#include "backend/cpu/CpuBackend.h"
#include "core/Rng.h"

namespace sw {
namespace {

Tensor randn(const Shape& s, Rng& rng) {
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.normal();
  return t;
}

// max |a - b| / (max |b| + tiny): errors relative to the tensor's scale, as sums of many terms
// in different orders differ by rounding relative to that scale, not to each element.
double relErr(const Tensor& a, const Tensor& b) {
  double num = 0, den = 1e-30;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num = std::max(num, double(std::fabs(a.data()[i] - b.data()[i])));
    den = std::max(den, double(std::fabs(b.data()[i])));
  }
  return num / den;
}

struct Case {
  int64_t n, c, h, w, k, r, stride, pad;
};

class CpuConv2Algos : public ::testing::TestWithParam<Case> {};

TEST_P(CpuConv2Algos, AgreeOnForwardBackwardAndAccumulation) {
  const Case cs = GetParam();
  CpuBackend fast(2), ref(2);
  ref.setConvImpl(CpuConv::kIm2col);
  Rng rng(uint64_t(cs.c * 131 + cs.k * 7 + cs.r));
  const ConvGeom g = ConvGeom::make(Shape{cs.n, cs.c, cs.h, cs.w}, cs.k, cs.r, cs.r, cs.stride, cs.pad);
  const Tensor x = randn(Shape{g.n, g.c, g.h, g.w}, rng), w = randn(Shape{g.k, g.c, g.r, g.s}, rng);
  const Tensor b = randn(Shape{g.k}, rng), dy = randn(Shape{g.n, g.k, g.oh, g.ow}, rng);
  const std::string what = "conv " + g.key();
#ifdef SW_HAVE_DNNL
  // Block-aligned channel counts are what oneDNN's direct kernels exist for on every x86 ISA.
  if (g.c % 16 == 0 && g.k % 16 == 0) {
    EXPECT_TRUE(fast.convUsesOneDnn(g)) << what;
  }
#endif
  EXPECT_FALSE(ref.convUsesOneDnn(g)) << what;

  Tensor y1 = Tensor::empty(dy.shape()), y2 = Tensor::empty(dy.shape());
  fast.convForward(x, w, b, y1, g);
  ref.convForward(x, w, b, y2, g);
  EXPECT_LT(relErr(y1, y2), 1e-5) << what << " forward";

  // Both gradients in one call, then accumulated on top of a previous value.
  for (Accumulate acc : {Accumulate::kNo, Accumulate::kYes}) {
    const Tensor dw0 = randn(w.shape(), rng);
    Tensor dw1 = dw0.clone(), dw2 = dw0.clone();
    Tensor dx1 = Tensor::empty(x.shape()), dx2 = Tensor::empty(x.shape());
    fast.convBackward(x, dy, w, &dw1, acc, &dx1, g);
    ref.convBackward(x, dy, w, &dw2, acc, &dx2, g);
    const std::string a = acc == Accumulate::kYes ? " accumulated" : "";
    EXPECT_LT(relErr(dw1, dw2), 1e-5) << what << " dW" << a;
    EXPECT_LT(relErr(dx1, dx2), 1e-5) << what << " dX";
    // The separate calls (as ConvTranspose2d and the DTP feedback nets use them).
    Tensor dx3 = randn(x.shape(), rng), dx4 = dx3.clone();
    fast.convBackwardData(dy, w, dx3, g, acc);
    ref.convBackwardData(dy, w, dx4, g, acc);
    EXPECT_LT(relErr(dx3, dx4), 1e-5) << what << " dX separate" << a;
    Tensor dw3 = dw0.clone(), dw4 = dw0.clone();
    fast.convBackwardFilter(x, dy, dw3, nullptr, g, acc);
    ref.convBackwardFilter(x, dy, dw4, nullptr, g, acc);
    EXPECT_LT(relErr(dw3, dw4), 1e-5) << what << " dW separate" << a;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CpuConv2Algos,
    ::testing::Values(Case{8, 3, 32, 32, 64, 3, 1, 1},     // ResNet stem
                      Case{4, 64, 16, 16, 64, 3, 1, 1},    // basic block
                      Case{4, 64, 16, 16, 128, 3, 2, 1},   // downsampling
                      Case{4, 64, 16, 16, 128, 1, 2, 0},   // projection shortcut
                      Case{4, 96, 12, 12, 96, 3, 2, 1},    // All-CNN-C, 96 = 6 blocks
                      Case{3, 20, 11, 9, 50, 5, 1, 0},     // LeNet-like, odd sizes
                      Case{2, 1, 28, 28, 6, 5, 1, 2},      // one input channel
                      Case{5, 48, 7, 7, 24, 3, 1, 0}));    // valid conv, batch not a group multiple

}  // namespace
}  // namespace sw
