// The parle family's config keys (see Options.h here; the key machinery is config/Keys.h).
#include <map>
#include <sstream>

#include "config/Keys.h"
#include "config/TrainConfig.h"
#include "core/Error.h"

namespace sw {

void addParleKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [parle] (spec seed-parle.md; -1 = the variant's reference default)
      {"parle.mode", "parle", "parle | elastic (Elastic-SGD: L = 0, or L = 1 and gamma = 0 in mpi2018) | entropy (Entropy-SGD: rho = 0, one replica)",
       [](TrainConfig& c, const std::string& v) { c.parle.mode = oneOf("parle.mode", v, {"parle", "elastic", "entropy"}); }},
      {"parle.variant", "optim2017", "optim2017 (distributed-ensembles optim.Parle, the paper's code) | mpi2018 (parle_mpi.py)",
       [](TrainConfig& c, const std::string& v) { c.parle.variant = oneOf("parle.variant", v, {"optim2017", "mpi2018"}); }},
      {"parle.L", "25", "inner steps per synchronisation (optim2017: 0 = Elastic-SGD every mini-batch)",
       [](TrainConfig& c, const std::string& v) { c.parle.L = int(toInt("parle.L", v, 0, 1 << 20)); }},
      {"parle.gamma", "0.01", "gamma_0: proximal coupling of the inner steps to the anchor",
       [](TrainConfig& c, const std::string& v) { c.parle.gamma = toDouble("parle.gamma", v, 0, 1e6); }},
      {"parle.rho", "-1", "rho_0: elastic coupling to the replica mean (-1: optim2017 1.0; mpi2018 0.01 = rho_cli, rho_0 = rho L n)",
       [](TrainConfig& c, const std::string& v) { c.parle.rho = toDouble("parle.rho", v, -1, 1e6); }},
      {"parle.gamma_max", "1", "cap of the annealed gamma",
       [](TrainConfig& c, const std::string& v) { c.parle.gammaMax = toDouble("parle.gamma_max", v, 0, 1e9); }},
      {"parle.rho_max", "10", "cap of the annealed rho",
       [](TrainConfig& c, const std::string& v) { c.parle.rhoMax = toDouble("parle.rho_max", v, 0, 1e9); }},
      {"parle.scoping", "0.5", "annealing: gamma and rho grow by 1 + scoping / nb per sync (optim2017) or per floor(t / L) (mpi2018); nb = mini-batches per epoch of a replica",
       [](TrainConfig& c, const std::string& v) { c.parle.scoping = toDouble("parle.scoping", v, 0, 1e6); }},
      {"parle.inner_lr", "-1", "inner learning rate; 0 = the scheduled optim.lr (-1: optim2017 0.1, mpi2018 0)",
       [](TrainConfig& c, const std::string& v) { c.parle.innerLr = toDouble("parle.inner_lr", v, -1, 1e6); }},
      {"parle.beta1", "-1", "weight of the old inner average (-1: optim2017 0 = last inner iterate, mpi2018 0.75)",
       [](TrainConfig& c, const std::string& v) { c.parle.beta1 = toDouble("parle.beta1", v, -1, 0.999999); }},
      {"parle.outer_momentum", "-1", "optim2017 outer-step momentum (-1 = optim.momentum)",
       [](TrainConfig& c, const std::string& v) { c.parle.outerMomentum = toDouble("parle.outer_momentum", v, -1, 1); }},
      {"parle.counter_per_tensor", "false", "mpi2018: advance the annealing counter once per parameter tensor per step, as the released parle_mpi.py does (spec 9.2)",
       [](TrainConfig& c, const std::string& v) { c.parle.counterPerTensor = toBool("parle.counter_per_tensor", v); }},
      {"parle.pipeline", "1f1b", "per-replica pipeline schedule when pipe.stages > 1: 1f1b | gpipe | mp",
       [](TrainConfig& c, const std::string& v) { c.parle.pipeline = oneOf("parle.pipeline", v, {"1f1b", "gpipe", "mp"}); }},
      {"parle.data", "shard", "replica data: shard (disjoint 1/n of each epoch, like dp) | full (every replica the whole set, own shuffle) | same (identical streams; tests)",
       [](TrainConfig& c, const std::string& v) { c.parle.data = oneOf("parle.data", v, {"shard", "full", "same"}); }},
      {"parle.init", "replica", "replica initialisation: replica (train.seed + replica, as the references) | same (train.seed everywhere)",
       [](TrainConfig& c, const std::string& v) { c.parle.init = oneOf("parle.init", v, {"replica", "same"}); }},
      {"parle.bn_refresh", "true", "re-estimate the master's batch-norm statistics on training data before each evaluation",
       [](TrainConfig& c, const std::string& v) { c.parle.bnRefresh = toBool("parle.bn_refresh", v); }},
      {"parle.bn_batches", "0", "micro-batches of that re-estimation (0 = the whole training set)",
       [](TrainConfig& c, const std::string& v) { c.parle.bnBatches = toInt("parle.bn_batches", v, 0, INT64_MAX); }},
  });
}

// [parle]: the variant's reference defaults for -1 values and the settings the mode fixes; the
// effective values replace the given ones in the resolved config.
namespace {
void resolveParleChecked(TrainConfig& c, const std::map<std::string, std::string>& given);
}  // namespace

void resolveParleOptions(TrainConfig& c, const std::map<std::string, std::string>& given) {
  resolveParleChecked(c, given);
  const ParleSection& p = c.parle;
  setResolved(c, "parle.L", std::to_string(p.L));
  setResolved(c, "parle.gamma", fmtNum(p.gamma));
  setResolved(c, "parle.rho", fmtNum(p.rho));
  setResolved(c, "parle.inner_lr", fmtNum(p.innerLr));
  setResolved(c, "parle.beta1", fmtNum(p.beta1));
  setResolved(c, "parle.outer_momentum", fmtNum(p.outerMomentum));
}

namespace {
// A key the mode fixes may not be given with a different value.
void resolveParleChecked(TrainConfig& c, const std::map<std::string, std::string>& given) {
  ParleSection& p = c.parle;
  const bool a = p.variant == "mpi2018";
  if (p.rho < 0) p.rho = a ? 0.01 : 1.0;
  if (p.innerLr < 0) p.innerLr = a ? 0.0 : 0.1;
  if (p.beta1 < 0) p.beta1 = a ? 0.75 : 0.0;
  if (p.outerMomentum < 0) p.outerMomentum = c.optim.momentum;
  if (c.train.algo != "parle") return;
  auto fix = [&](const std::string& key, double& field, double value, const std::string& why) {
    if (given.count(key) && field != value) {
      std::ostringstream os;
      os << key << " = " << field << " contradicts parle.mode = " << p.mode << " (" << why << ")";
      throw ConfigError(os.str());
    }
    field = value;
  };
  if (p.mode == "elastic") {
    double L = p.L;
    fix("parle.L", L, a ? 1 : 0, a ? "mpi2018 Elastic-SGD is L = 1, gamma = 0" : "Elastic-SGD couples every mini-batch, L = 0");
    p.L = int(L);
    if (a) fix("parle.gamma", p.gamma, 0, "mpi2018 Elastic-SGD is L = 1, gamma = 0");
  } else if (p.mode == "entropy") {
    fix("parle.rho", p.rho, 0, "Entropy-SGD has no elastic coupling, rho = 0");
  }
  if (p.L == 0 && a) throw ConfigError("parle.L = 0: Elastic-SGD every mini-batch exists only in parle.variant = optim2017");
  if (c.optim.kind != OptimKind::kSgd)
    throw ConfigError("optim.name: train.algo = parle takes SGD with momentum for its inner and outer steps (set optim.name = sgd)");
  if (a && !c.optim.nesterov)
    throw ConfigError("optim.nesterov = false: parle.variant = mpi2018 uses its reference's Nesterov momentum "
                      "(v <- mu v + d, step d + v) in both loops; set optim.nesterov = true");
  if (c.train.accumSteps != 1)
    throw ConfigError("train.accum_steps = " + std::to_string(c.train.accumSteps) +
                      ": train.algo = parle takes one mini-batch per inner step (use pipe.microbatches to split it)");
}


}  // namespace

}  // namespace sw
