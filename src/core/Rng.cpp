// xoshiro256** (Blackman & Vigna 2018) with splitmix64 seeding.
#include "core/Rng.h"

#include <cmath>
#include <cstring>

namespace sw {
namespace {
uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& w : s_) w = splitmix(x);
  has_cached_ = false;
}

Rng Rng::derive(uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
  return Rng(splitmix(x));
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  // Lemire's multiply-shift with rejection: unbiased.
  uint64_t x = next();
  __uint128_t m = static_cast<__uint128_t>(x) * n;
  uint64_t l = static_cast<uint64_t>(m);
  if (l < n) {
    uint64_t t = -n % n;
    while (l < t) {
      x = next();
      m = static_cast<__uint128_t>(x) * n;
      l = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

float Rng::normal() {
  if (has_cached_) {
    has_cached_ = false;
    return cached_;
  }
  double u1 = (static_cast<double>(next() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
  double r = std::sqrt(-2.0 * std::log(u1));
  cached_ = static_cast<float>(r * std::sin(2.0 * M_PI * u2));
  has_cached_ = true;
  return static_cast<float>(r * std::cos(2.0 * M_PI * u2));
}

Rng::State Rng::state() const {
  uint32_t bits;
  std::memcpy(&bits, &cached_, 4);
  return {s_[0], s_[1], s_[2], s_[3], (has_cached_ ? (1ull << 32) : 0ull) | bits};
}

void Rng::setState(const State& st) {
  for (int i = 0; i < 4; ++i) s_[i] = st[i];
  has_cached_ = (st[4] >> 32) & 1;
  uint32_t bits = static_cast<uint32_t>(st[4]);
  std::memcpy(&cached_, &bits, 4);
}

}  // namespace sw
