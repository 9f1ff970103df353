// The [parle] options of the parle family: the struct TrainConfig holds, and (Options.cpp here) the
// keys that fill it and their checks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sw {

// Parle, Elastic-SGD and Entropy-SGD as settings of one optimizer (spec seed-parle.md). The
// replica count n is the world size / pipe.stages. Values the INI leaves at -1 are resolved to
// the variant's reference default by parseConfig (see Options.cpp).
struct ParleSection {
  std::string mode = "parle";          // parle | elastic (L = 0) | entropy (rho = 0, n = 1)
  std::string variant = "optim2017";   // optim2017 (spec 3, the paper's code) | mpi2018 (spec 2)
  int L = 25;                          // inner steps per synchronisation
  double gamma = 0.01;                 // gamma_0 (proximal coupling)
  double rho = 1.0;                    // optim2017: rho_0 (g1); mpi2018: rho_cli (rho_0 = rho L n)
  double gammaMax = 1, rhoMax = 10;    // caps of the annealed couplings
  double scoping = 0.5;                // couplings grow by 1 + scoping / nb per counter unit
  double innerLr = 0.1;                // > 0 fixed inner rate; 0 = the scheduled optim.lr
  double beta1 = 0;                    // optim2017: m average weight; mpi2018: alpha of z
  double outerMomentum = 0.9;          // optim2017 outer momentum
  bool counterPerTensor = false;       // mpi2018: t += #parameter tensors per step (released code)
  std::string pipeline = "1f1b";       // per-replica pipeline when pipe.stages > 1
  std::string data = "shard";          // shard | full | same (data stream of each replica)
  std::string init = "replica";        // replica (seed + replica) | same
  bool bnRefresh = true;               // re-estimate the master's BN statistics before evaluation
  int64_t bnBatches = 0;               // micro-batches of that pass (0 = the whole training set)
};

}  // namespace sw
