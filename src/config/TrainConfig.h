// TrainConfig: every setting of a run, grouped by INI section. Filled by parseConfig() from a
// configs/*.ini file plus command-line overrides (section.key=value), validated there; the
// resolved form is written to the run directory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/Dataset.h"
#include "data/Loader.h"
#include "nn/Zoo.h"
#include "optim/LrSchedule.h"
#include "optim/Optimizer.h"

namespace sw {

struct TrainSection {
  std::string algo = "bp";
  int epochs = 1;
  int64_t batchSize = 128;
  int64_t evalBatchSize = 1000;
  int accumSteps = 1;
  bool accumAverage = true;
  uint64_t seed = 0;
  int64_t maxSteps = 0;       // stop after this many optimizer steps (0 = no limit)
  double logEverySeconds = 10; // progress line period when stdout is not a terminal
};

// Deliberate failure for fault-tolerance tests: rank `rank` fails at optimizer step `step`.
struct FaultSpec {
  std::string kind;  // "" (off) | throw | hang | kill
  int rank = 0;
  int64_t step = 0;
};

struct RuntimeSection {
  int threads = 0;             // 0 = all cores
  std::string device = "cpu";  // cpu | cuda | auto
  double commTimeout = 300;    // communication watchdog (seconds)
  FaultSpec fault;
  int localRanks = 1;          // not a key: ranks sharing this host (threads = 0 splits the cores)
};

struct PipeSection {
  int stages = 0;              // 0 = automatic (all ranks for pipeline algorithms)
  int microbatches = 1;
  std::string partition;       // explicit stage boundaries, or empty = balanced
  std::string balance = "time";
};

struct PipeDreamSection {
  bool verticalSync = false;
  int drainEvery = 64;         // mini-batches per round (0 = the whole epoch)
};

struct DpSection {
  double bucketMb = 25;
};

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

struct CheckpointSection {
  int everyEpochs = 1;         // 0 = only at the end and on signals
  int64_t everySteps = 0;      // 0 = off
  int keep = 2;                // committed checkpoints kept
};

struct TrainConfig {
  TrainSection train;
  ModelSpec model;
  DataSpec data;
  AugmentSpec augment;
  OptimConfig optim;
  LrConfig lr;                 // lr.lr, schedule, warm-up, goyal (epochs/batch/accum filled in)
  RuntimeSection runtime;
  CheckpointSection checkpoint;
  PipeSection pipe;
  PipeDreamSection pipedream;
  DpSection dp;
  ParleSection parle;
  // The resolved "section.key = value" lines, in declaration order (written to DIR/config.ini).
  std::vector<std::pair<std::string, std::string>> resolved;
  std::string iniText() const;
};

// Parses an INI file (may be empty: defaults only) and overrides ("section.key=value" strings).
// Throws ConfigError naming the file/key and what was expected.
TrainConfig parseConfig(const std::string& iniPath, const std::vector<std::string>& overrides);
// Parses INI text (used for resume: the run directory's config.ini).
TrainConfig parseConfigText(const std::string& text, const std::string& origin,
                            const std::vector<std::string>& overrides);
// "section.key  default  help" lines for --help.
std::string configHelp();

}  // namespace sw
