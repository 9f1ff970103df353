// Keyed Gaussian noise: xoshiro256** streams per 1024-element chunk, Box-Muller in float.
// This file is compiled with -ffast-math (see src/CMakeLists.txt) so the log/sqrt/sin/cos loop
// vectorises through libmvec: the noise of one G_1 iteration is ~10^6 values, and scalar libm
// Box-Muller would cost as much as the convolutions it feeds.
#include "algo/dtp/Noise.h"

#include <cmath>

#include "core/Error.h"

namespace sw::dtp {
namespace {
constexpr int64_t kChunk = 1024;  // values per independently seeded chunk (even)

uint64_t mix(uint64_t h, uint64_t v) {
  // splitmix64 finaliser over the running hash and the next key field.
  uint64_t z = h ^ (v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// xoshiro256** inline (the draw is in the inner loop), seeded by splitmix64 from the chunk key.
struct Xoshiro {
  uint64_t s[4];
  explicit Xoshiro(uint64_t seed) {
    for (auto& w : s) w = seed = mix(seed, 0x5EED);
  }
  uint64_t next() {
    const uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
};
}  // namespace

uint64_t NoiseKey::hash() const {
  uint64_t h = mix(0xD7B0'7A11'0000'0001ull, seed);
  h = mix(h, uint64_t(step));
  h = mix(h, uint64_t(layer));
  h = mix(h, uint64_t(iteration));
  h = mix(h, uint64_t(sample));
  return mix(h, uint64_t(which));
}

void fillNormal(Tensor& out, float sigma, const NoiseKey& key) {
  SW_CHECK(out.device().isCpu(), "fillNormal writes host tensors");
  const uint64_t base = key.hash();
  const int64_t n = out.numel();
  float* p = out.data();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t c = 0; c < chunks; ++c) {
    Xoshiro r(mix(base, uint64_t(c)));
    constexpr int64_t kHalf = kChunk / 2;
    alignas(64) float u1[kHalf], u2[kHalf], rad[kHalf], cs[kHalf], sn[kHalf];
    for (int64_t j = 0; j < kHalf; ++j) {
      const uint64_t v = r.next();
      // Two 24-bit uniforms per draw; u1 in (0, 1] keeps the log finite.
      u1[j] = (float((v >> 40) & 0xFFFFFF) + 1.f) * (1.f / 16777216.f);
      u2[j] = float((v >> 8) & 0xFFFFFF) * (6.2831853071795864f / 16777216.f);
    }
    // Separate loops: each one vectorises on its own libmvec function (a fused sincos does not).
#pragma omp simd
    for (int64_t j = 0; j < kHalf; ++j) rad[j] = sigma * std::sqrt(-2.f * std::log(u1[j]));
#pragma omp simd
    for (int64_t j = 0; j < kHalf; ++j) cs[j] = std::cos(u2[j]);
#pragma omp simd
    for (int64_t j = 0; j < kHalf; ++j) sn[j] = std::sin(u2[j]);
    const int64_t begin = c * kChunk, len = std::min(kChunk, n - begin);
    float* dst = p + begin;
    if (len == kChunk) {
#pragma omp simd
      for (int64_t j = 0; j < kHalf; ++j) {
        dst[2 * j] = rad[j] * cs[j];
        dst[2 * j + 1] = rad[j] * sn[j];
      }
    } else {
      for (int64_t j = 0; j < len; ++j) dst[j] = rad[j / 2] * (j % 2 ? sn[j / 2] : cs[j / 2]);
    }
  }
}

}  // namespace sw::dtp
