// The [dtp] options of the dtp family: the struct TrainConfig holds, and (Options.cpp here) the
// keys that fill it and their checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sw {

// Difference target propagation (train.algo = dtp | dtp_parallel; spec seed-dtp.md 2-4). The lists
// have one entry per trainable feedback block G_1..G_L, ordered input -> output (entry j is G_{j+1}).
struct DtpSection {
  float beta = 0.7f;                                      // target step size (first target)
  std::vector<int64_t> feedbackIterations{20, 30, 35, 55, 20};  // L-DRL iterations K_i per step
  std::vector<float> feedbackNoise{0.4f, 0.4f, 0.2f, 0.2f, 0.08f};  // noise scale sigma_i
  std::vector<float> feedbackLr{1e-4f, 3.5e-4f, 8e-3f, 8e-3f, 0.18f};  // feedback SGD lr_i (never scheduled)
  float feedbackMomentum = 0.9f;
  int feedbackSamples = 1;                                // noise samples averaged per iteration
  std::string rhatIndices = "clean";                      // pool indices of r^ = G(y + dy): clean | noisy
  std::string assign = "balanced";                        // dtp_parallel: layer -> rank mapping
  int64_t checkSyncEvery = 0;                             // steps between cross-rank weight checks (0: per epoch)
  int64_t bpAngleEvery = 0;                               // steps between DTP-vs-BP gradient angle probes (0: off)
};

}  // namespace sw
