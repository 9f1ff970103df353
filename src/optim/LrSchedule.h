// Learning-rate schedule: a pure function of (epoch, iteration in epoch), so that resumed and
// pipelined runs agree (spec seed-petra.md 4.4). Goyal scaling lr0 = lr * k * B / 256; linear
// warm-up lr0 (i+1)/(W N) over W epochs; then constant, step (milestones, factor), cosine or
// polynomial (power 2) over the remaining epochs: the PETRA system's lr0 (1 - (e+1)/T)^2, which
// is 0 in the last epoch, or (polyReachZero = false) the SpecTrain system's lr0 (1 - e/T)^2, which
// starts at lr0 and keeps training in the last epoch; or (polyPerIteration) lr0 (1 - t/T)^2 with
// t = e + i/N advancing every iteration, annealing smoothly to ~0 at the last step.
#pragma once
#include <string>
#include <vector>

namespace sw {

enum class LrKind { kConstant, kStep, kCosine, kPoly };
LrKind parseLrKind(const std::string& s);  // throws ConfigError

struct LrConfig {
  float lr = 0.1f;
  LrKind kind = LrKind::kConstant;
  std::vector<int> milestones;  // absolute epochs
  float factor = 0.1f;
  int warmupEpochs = 0;
  bool goyal = false;
  int accumSteps = 1, batchSize = 128;
  int epochs = 1;
  // Cosine only: PyTorch CosineAnnealingLR(T_max, eta_min) in closed form,
  // eta_min + (lr0 - eta_min) (1 + cos(pi e / T_max)) / 2 (past T_max it rises again, as PyTorch's
  // does). tMax = 0 keeps the default cosine over the training epochs.
  int tMax = 0;
  float etaMin = 0.f;
  bool polyReachZero = true;
  bool polyPerIteration = false;
};

class LrSchedule {
 public:
  explicit LrSchedule(LrConfig c) : c_(std::move(c)) {}
  float base() const;  // lr0 after scaling
  float at(int epoch, int64_t iter, int64_t itersPerEpoch) const;
  const LrConfig& config() const { return c_; }

 private:
  LrConfig c_;
};

}  // namespace sw
