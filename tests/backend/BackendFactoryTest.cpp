// makeBackend's device choice (runtime.device): cpu always the CPU; auto the GPU when one is
// usable, else the CPU; cuda the GPU local rank % devices, or a ConfigError without one.
#include <gtest/gtest.h>

#include "backend/cpu/CpuBackend.h"
#include "core/Error.h"
#include "train/Trainer.h"

namespace sw {
namespace {

TEST(BackendFactory, PicksTheDeviceNamedByRuntimeDevice) {
  RuntimeSection rt;
  rt.threads = 1;
  rt.device = "cpu";
  EXPECT_EQ(makeBackend(rt)->name(), "cpu");
  const int devices = cudaDeviceCount();
  rt.device = "auto";
  EXPECT_EQ(makeBackend(rt)->name(), devices > 0 ? "cuda" : "cpu");
  rt.device = "cuda";
  if (devices == 0) {
    EXPECT_THROW(makeBackend(rt), ConfigError);
  } else {
    rt.localRank = 5;
    EXPECT_EQ(makeBackend(rt)->device(), Device::cuda(5 % devices));
  }
}

// runtime.cpu_conv reaches the CPU backend: im2col everywhere, or oneDNN's kernels where the
// build has them (block-aligned channels always have one on x86).
TEST(BackendFactory, CpuConvChoosesTheConvolutionAlgorithm) {
  RuntimeSection rt;
  rt.threads = 1;
  const ConvGeom g = ConvGeom::make(Shape{2, 16, 8, 8}, 32, 3, 3, 1, 1);
  rt.cpuConv = "im2col";
  auto ref = makeBackend(rt);
  EXPECT_FALSE(dynamic_cast<CpuBackend&>(*ref).convUsesOneDnn(g));
  rt.cpuConv = "auto";
  auto fast = makeBackend(rt);
#ifdef SW_HAVE_DNNL
  EXPECT_TRUE(dynamic_cast<CpuBackend&>(*fast).convUsesOneDnn(g));
#else
  EXPECT_FALSE(dynamic_cast<CpuBackend&>(*fast).convUsesOneDnn(g));
#endif
}

}  // namespace
}  // namespace sw
