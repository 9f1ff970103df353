// CUDA kernels against the CPU backend (the reference). Skipped cleanly without a device.
// Tolerance: activations use expf/tanhf/expm1f whose device versions differ from glibc by a few
// ulp, so 4e-6 relative; optimizer updates are the same float formula, 1e-6.
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "backend/Backend.h"
#include "kernels/activation.cuh"
#include "kernels/device.cuh"
#include "kernels/optimizer.cuh"

namespace sw {
namespace {

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kernels::deviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    cpu_ = makeCpuBackend(1);
  }
  float* up(const Tensor& h) {
    float* d = nullptr;
    EXPECT_EQ(cudaMalloc(&d, h.bytes()), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(d, h.data(), h.bytes(), cudaMemcpyHostToDevice), cudaSuccess);
    ptrs_.push_back(d);
    return d;
  }
  Tensor down(const float* d, const Shape& s) {
    Tensor h = Tensor::empty(s);
    EXPECT_EQ(cudaMemcpy(h.data(), d, h.bytes(), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
  void TearDown() override {
    for (float* p : ptrs_) cudaFree(p);
  }
  static Tensor randn(const Shape& s, uint64_t seed, float scale = 1.f) {
    Rng r(seed);
    Tensor t = Tensor::empty(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = scale * r.normal();
    return t;
  }
  static void expectClose(const Tensor& a, const Tensor& b, double rtol) {
    double maxd = 0, maxb = 0;
    for (int64_t i = 0; i < a.numel(); ++i) {
      maxd = std::max(maxd, double(std::abs(a.data()[i] - b.data()[i])));
      maxb = std::max(maxb, double(std::abs(b.data()[i])));
    }
    EXPECT_LE(maxd, rtol * maxb + 1e-7) << "max abs diff " << maxd << " of max " << maxb;
  }
  std::unique_ptr<Backend> cpu_;
  std::vector<float*> ptrs_;
};

TEST_F(Cuda, ActivationsMatchCpu) {
  const Shape s{3, 1000, 37};
  for (Act a : {Act::kIdentity, Act::kRelu, Act::kElu, Act::kTanh, Act::kSigmoid}) {
    Tensor x = randn(s, 1, 3.f), dy = randn(s, 2);
    Tensor y = Tensor::empty(s), dx = Tensor::empty(s);
    cpu_->actForward(a, 1.f, x, y);
    cpu_->actBackward(a, 1.f, x, y, dy, dx);
    float *dxp = up(x), *dyv = up(dy), *dyp = up(Tensor::zeros(s)), *ddx = up(Tensor::zeros(s));
    kernels::actForward(int(a), 1.f, dxp, dyp, s.numel(), nullptr);
    kernels::actBackward(int(a), 1.f, dxp, dyp, dyv, ddx, s.numel(), nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    SCOPED_TRACE(int(a));
    expectClose(down(dyp, s), y, 4e-6);
    expectClose(down(ddx, s), dx, 4e-6);
  }
}

TEST_F(Cuda, SgdAndAdamMatchCpu) {
  const Shape s{4097};
  Tensor p0 = randn(s, 3), g = randn(s, 4, 0.1f);
  for (bool nesterov : {false, true}) {
    Tensor pc = p0.clone(), bc = Tensor::zeros(s);
    float *pd = up(p0), *gd = up(g), *bd = up(Tensor::zeros(s));
    for (int step = 0; step < 3; ++step) {
      SgdOpts o{.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .weightDecay = 1e-3f, .nesterov = nesterov};
      cpu_->sgdUpdate(pc, g, bc, o, step == 0);
      kernels::sgdUpdate(pd, gd, bd, s.numel(), {0.1f, 0.9f, 0.1f, 1e-3f, nesterov, step == 0}, nullptr);
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    expectClose(down(pd, s), pc, 1e-6);
  }
  for (bool ams : {false, true}) {
    Tensor pc = p0.clone(), m = Tensor::zeros(s), v = Tensor::zeros(s), vm = Tensor::zeros(s);
    float *pd = up(p0), *gd = up(g), *md = up(m), *vd = up(v), *vmd = up(vm);
    for (int step = 1; step <= 3; ++step) {
      AdamOpts o{.lr = 1e-2f, .weightDecay = 1e-2f, .amsgrad = ams, .step = step};
      cpu_->adamUpdate(pc, g, m, v, vm, o);
      kernels::adamUpdate(pd, gd, md, vd, vmd, s.numel(), {1e-2f, 0.9f, 0.999f, 1e-8f, 1e-2f, ams, step}, nullptr);
    }
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    expectClose(down(pd, s), pc, 1e-6);
  }
}

}  // namespace
}  // namespace sw
