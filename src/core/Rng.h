// Seeded reproducible RNG: xoshiro256** seeded through splitmix64. The whole state is four
// 64-bit words, so checkpoints store it exactly and a resumed run draws the same numbers.
#pragma once
#include <array>
#include <cstdint>

namespace sw {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  // Independent stream derived from this seed and a stream id (per layer, per rank, per epoch).
  static Rng derive(uint64_t seed, uint64_t stream);

  uint64_t next();
  // Uniform in [0, 1) with 24 random bits (exact in float).
  float uniform() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n);
  // Standard normal (Box-Muller; the second value is cached).
  float normal();

  using State = std::array<uint64_t, 5>;  // 4 words + cached-normal flag/bits
  State state() const;
  void setState(const State& s);

 private:
  std::array<uint64_t, 4> s_{};
  bool has_cached_ = false;
  float cached_ = 0.f;
};

}  // namespace sw
