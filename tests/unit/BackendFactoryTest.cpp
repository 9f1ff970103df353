// makeBackend's device choice (runtime.device): cpu always the CPU; auto the GPU when one is
// usable, else the CPU; cuda the GPU local rank % devices, or a ConfigError without one.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sw
