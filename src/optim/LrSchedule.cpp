// Learning-rate schedules.
#include "optim/LrSchedule.h"

#include <cmath>

#include "core/Error.h"

namespace sw {

LrKind parseLrKind(const std::string& s) {
  if (s == "constant" || s == "none") return LrKind::kConstant;
  if (s == "step" || s == "steplr" || s == "multistep") return LrKind::kStep;
  if (s == "cosine") return LrKind::kCosine;
  if (s == "poly" || s == "polynomial") return LrKind::kPoly;
  throw ConfigError("optim.schedule: unknown schedule '" + s +
                    "' (expected constant, step, cosine or poly)");
}

float LrSchedule::base() const {
  return c_.goyal ? c_.lr * static_cast<float>(c_.accumSteps) * c_.batchSize / 256.f : c_.lr;
}

float LrSchedule::at(int epoch, int64_t iter, int64_t itersPerEpoch) const {
  const float lr0 = base();
  const int W = c_.warmupEpochs;
  if (epoch < W) {
    const double i = static_cast<double>(epoch) * itersPerEpoch + iter;
    return static_cast<float>(lr0 * (i + 1) / (static_cast<double>(W) * itersPerEpoch));
  }
  const int e = epoch - W, T = std::max(1, c_.epochs - W);
  switch (c_.kind) {
    case LrKind::kConstant:
      return lr0;
    case LrKind::kStep: {
      int n = 0;
      for (int m : c_.milestones) n += m <= epoch;
      return lr0 * std::pow(c_.factor, static_cast<float>(n));
    }
    case LrKind::kCosine:
      if (c_.tMax > 0)
        return static_cast<float>(c_.etaMin + (lr0 - c_.etaMin) * 0.5 * (1.0 + std::cos(M_PI * e / c_.tMax)));
      return static_cast<float>(0.5 * lr0 * (1.0 + std::cos(M_PI * e / (T + 1.0))));
    case LrKind::kPoly: {
      const double t = c_.polyPerIteration ? e + double(iter) / double(std::max<int64_t>(1, itersPerEpoch))
                                           : e + (c_.polyReachZero ? 1.0 : 0.0);
      const double f = std::max(0.0, 1.0 - t / T);
      return static_cast<float>(lr0 * f * f);
    }
  }
  return lr0;
}

}  // namespace sw
