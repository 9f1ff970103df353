// TrainConfig: every setting of a run, grouped by INI section. Filled by parseConfig() from a
// configs/*.ini file plus command-line overrides (section.key=value), validated there; the
// resolved form is written to the run directory.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "backend/BackendFactory.h"
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
  int jitterUs = 0;            // testing: random sleep of 0..N microseconds before each instruction
  std::string cpuConv = "auto";  // auto (oneDNN direct kernels where available) | im2col
  bool ncclP2p = false;        // pipeline messages of device tensors over NCCL (else staged MPI)
  int localRanks = 1;          // not a key: ranks sharing this host (threads = 0 splits the cores)
  int localRank = 0;           // not a key: this rank's index on its host (picks the GPU)
};

// The backend named by the runtime section.
inline std::unique_ptr<Backend> makeBackend(const RuntimeSection& rt) {
  return makeBackend(BackendOptions{.device = rt.device, .threads = rt.threads, .cpuConv = rt.cpuConv,
                                    .localRanks = rt.localRanks, .localRank = rt.localRank});
}

struct PipeSection {
  int stages = 0;              // 0 = automatic (all ranks for pipeline algorithms)
  int microbatches = 1;
  std::string partition;       // explicit stage boundaries, or empty = balanced
  std::string balance = "time";
};

struct PipeDreamSection {
  bool verticalSync = false;
  int drainEvery = 64;         // mini-batches per round (0 = the whole epoch)
  bool stash = true;           // weight stashing (false: a backward reads the current weights)
};

struct SpecTrainSection {
  int version = 1;
  int maxDistance = -1;
};

// Delayed-gradient pipeline modes (seed-petra.md 1.4): backprop = synchronous + store_context;
// stashing = store_input + store_params; DSP = store_input; PETRA = nothing stored.
struct PetraSection {
  bool synchronous = false;
  bool storeContext = false;
  bool storeInput = false;
  bool storeParams = false;
  int drainEvery = 0;  // mini-batches per round (0 = the whole epoch)
};

// Interlocking backprop (seed-interlocking.md): n-wise (n = communication distance + 1; 1 =
// local, 2 = pairwise, >= components = global), the pairwise variant, the auxiliary heads and
// the component split ("5,4,4,rest": block counts, the stem and the output head one block each).
// aux: one architecture for all aux heads, or a comma list with one per component but the last.
struct InterlockingSection {
  int n = 2;
  std::string pairwiseMode = "next_only";
  std::string aux = "conv128_bn_conv64_bn_gbpl_fc";
  std::string blocksPerComponent;
  int drainEvery = 64;  // mini-batches between pipeline drains (0 = once per epoch)
};

struct DpSection {
  double bucketMb = 25;
};

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
  SpecTrainSection spectrain;
  PetraSection petra;
  InterlockingSection interlocking;
  DpSection dp;
  DtpSection dtp;
  ParleSection parle;
  // The resolved "section.key = value" lines, in declaration order (written to DIR/config.ini).
  std::vector<std::pair<std::string, std::string>> resolved;
};

// The resolved config as INI text (DIR/config.ini; what the other ranks and a resume parse).
std::string iniText(const TrainConfig& cfg);

// Parses an INI file (may be empty: defaults only) and overrides ("section.key=value" strings).
// Throws ConfigError naming the file/key and what was expected.
TrainConfig parseConfig(const std::string& iniPath, const std::vector<std::string>& overrides);
// Parses INI text (used for resume: the run directory's config.ini).
TrainConfig parseConfigText(const std::string& text, const std::string& origin,
                            const std::vector<std::string>& overrides);
// "section.key  default  help" lines for --help.
std::string configHelp();

}  // namespace sw
