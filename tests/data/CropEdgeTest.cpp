// Random crop with replicate ("edge") padding, torchvision's padding_mode="edge" (used by DTP's
// CIFAR-10 recipe): every output pixel is a pixel of the image (clamped coordinates), never the
// zero padding, and the crop offsets still vary.
#include <gtest/gtest.h>

#include <set>

#include "core/Error.h"
#include "data/Loader.h"

namespace sw {

TEST(CropEdge, ReplicatesTheBorderInsteadOfZeros) {
  Dataset d;
  d.source = "test";
  d.sample = Shape{1, 4, 4};
  d.classes = 2;
  for (int i = 0; i < 64; ++i)
    for (int p = 0; p < 16; ++p) d.u8.push_back(uint8_t(10 + p));
  d.labels.assign(64, 0);
  auto pixels = [&](bool edge) {
    AugmentSpec a;
    a.cropPad = 2;
    a.cropEdge = edge;
    BatchLoader l(d, 64, 3, Shard{}, a, Shuffle::kNo, DropLast::kNo, Augment::kYes);
    Batch b;
    EXPECT_TRUE(l.next(b));
    std::multiset<int> v;
    for (int64_t i = 0; i < b.x.numel(); ++i) v.insert(int(b.x.data()[i] * 255.f + 0.5f));
    return v;
  };
  const auto edge = pixels(true), zero = pixels(false);
  EXPECT_EQ(edge.count(0), 0u) << "edge padding produced zero-padding pixels";
  EXPECT_GT(zero.count(0), 0u) << "zero padding should show zeros for some crops";
  for (int v : edge) EXPECT_TRUE(v >= 10 && v < 26) << v;
  // Corner pixels replicate: the top-left value 10 appears more often than once per sample.
  EXPECT_GT(edge.count(10), 64u);
  AugmentSpec bad;
  bad.cropPad = 2;
  bad.cropEdge = true;
  bad.padTo = 8;
  EXPECT_THROW(BatchLoader(d, 8, 1, Shard{}, bad, Shuffle::kNo, DropLast::kNo, Augment::kYes), ConfigError);
}

}  // namespace sw
