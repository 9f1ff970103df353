// The dtp family's config keys (see Options.h here; the key machinery is config/Keys.h).
#include <map>
#include <sstream>

#include "config/Keys.h"
#include "config/TrainConfig.h"
#include "core/Error.h"

namespace sw {

void addDtpKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [dtp]
      {"dtp.beta", "0.7", "dtp: target step size beta (first target t_L = z - beta (softmax(z) - onehot(y)))",
       [](TrainConfig& c, const std::string& v) { c.dtp.beta = float(toDouble("dtp.beta", v, 1e-12, 1e6)); }},
      {"dtp.feedback_iterations", "20,30,35,55,20", "dtp: L-DRL iterations per step of G_1..G_L (input -> output order)",
       [](TrainConfig& c, const std::string& v) { c.dtp.feedbackIterations = toIntList("dtp.feedback_iterations", v, 0); }},
      {"dtp.feedback_noise", "0.4,0.4,0.2,0.2,0.08", "dtp: L-DRL noise scale sigma of G_1..G_L",
       [](TrainConfig& c, const std::string& v) {
         c.dtp.feedbackNoise = toFloatList("dtp.feedback_noise", v);
         for (float s : c.dtp.feedbackNoise)
           if (!(s > 0)) bad("dtp.feedback_noise", v, "positive values");
       }},
      {"dtp.feedback_lr", "1e-4,3.5e-4,8e-3,8e-3,0.18", "dtp: SGD learning rate of G_1..G_L (never scheduled)",
       [](TrainConfig& c, const std::string& v) {
         c.dtp.feedbackLr = toFloatList("dtp.feedback_lr", v);
         for (float s : c.dtp.feedbackLr)
           if (s < 0) bad("dtp.feedback_lr", v, "non-negative values");
       }},
      {"dtp.feedback_momentum", "0.9", "dtp: SGD momentum of the feedback weights (weight decay 0)",
       [](TrainConfig& c, const std::string& v) { c.dtp.feedbackMomentum = float(toDouble("dtp.feedback_momentum", v, 0, 0.999999)); }},
      {"dtp.feedback_samples", "1", "dtp: noise samples averaged per L-DRL iteration",
       [](TrainConfig& c, const std::string& v) { c.dtp.feedbackSamples = int(toInt("dtp.feedback_samples", v, 1, 1024)); }},
      {"dtp.rhat_indices", "clean", "dtp: pool indices for r^ = G(y + dy) in L-DRL: clean (spec, distributed-dtp) | noisy (scalingDTP's code: the noisy forward's)",
       [](TrainConfig& c, const std::string& v) { c.dtp.rhatIndices = oneOf("dtp.rhat_indices", v, {"clean", "noisy"}); }},
      {"dtp.assign", "balanced", "dtp_parallel: feedback layer -> rank: balanced (by iterations x MACs) | round_robin (G_i on rank i % ranks)",
       [](TrainConfig& c, const std::string& v) { c.dtp.assign = oneOf("dtp.assign", v, {"balanced", "round_robin"}); }},
      {"dtp.check_sync_every", "0", "dtp_parallel: steps between checks that all ranks hold identical weights (0 = each epoch)",
       [](TrainConfig& c, const std::string& v) { c.dtp.checkSyncEvery = toInt("dtp.check_sync_every", v, 0, INT64_MAX); }},
      {"dtp.bp_angle_every", "0", "dtp: every N steps, measure the angle between each block's DTP gradient and its backprop gradient (metrics bp_angle_F<i>, mean over the epoch; 0: off)",
       [](TrainConfig& c, const std::string& v) { c.dtp.bpAngleEvery = toInt("dtp.bp_angle_every", v, 0, INT64_MAX); }},
  });
}

void resolveDtpOptions(TrainConfig& c) {
  if (c.dtp.feedbackIterations.size() != c.dtp.feedbackNoise.size() ||
      c.dtp.feedbackIterations.size() != c.dtp.feedbackLr.size())
    throw ConfigError("dtp.feedback_iterations, dtp.feedback_noise and dtp.feedback_lr need one value per feedback "
                      "layer each, got " + std::to_string(c.dtp.feedbackIterations.size()) + ", " +
                      std::to_string(c.dtp.feedbackNoise.size()) + " and " + std::to_string(c.dtp.feedbackLr.size()));
}

}  // namespace sw
