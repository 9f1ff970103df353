// Core tensor, RNG and allocator behaviour.
#include <gtest/gtest.h>

#include "core/Allocator.h"
#include "core/Error.h"
#include "core/Rng.h"
#include "core/Tensor.h"

namespace sw {

TEST(Tensor, ReshapeSharesStorageAndChecksCount) {
  Tensor t = Tensor::zeros(Shape{2, 3, 4});
  Tensor r = t.reshape(Shape{6, 4});
  r.data()[5] = 7.f;
  EXPECT_EQ(t.data()[5], 7.f);
  EXPECT_THROW(t.reshape(Shape{5, 5}), ShapeError);
}

TEST(Tensor, SliceViewsRows) {
  Tensor t = Tensor::empty(Shape{4, 2});
  for (int i = 0; i < 8; ++i) t.data()[i] = float(i);
  Tensor s = t.slice(1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 2}));
  EXPECT_EQ(s.data()[0], 2.f);
  EXPECT_EQ(s.data()[3], 5.f);
}

TEST(Rng, ReproducibleAndStateRoundTrip) {
  Rng a(42), b(42);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(a.next(), b.next());
  a.normal();  // leaves a cached value
  Rng::State st = a.state();
  float x = a.normal(), y = a.uniform();
  Rng c(0);
  c.setState(st);
  EXPECT_EQ(c.normal(), x);
  EXPECT_EQ(c.uniform(), y);
}

TEST(Rng, UniformAndNormalMoments) {
  Rng r(1);
  double s = 0, s2 = 0, u = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    float z = r.normal();
    s += z;
    s2 += z * z;
    u += r.uniform();
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
  EXPECT_NEAR(u / n, 0.5, 0.01);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(r.below(7), 7u);
}

TEST(Allocator, ReusesBlocks) {
  void* p;
  {
    Tensor t = Tensor::empty(Shape{12345});
    p = t.data();
  }
  Tensor u = Tensor::empty(Shape{12345});
  EXPECT_EQ(u.data(), p);
}

}  // namespace sw
