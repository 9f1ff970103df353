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
// The algorithm sections: each family declares its own (src/algo/<family>/Options.h).
#include "algo/backprop/Options.h"
#include "algo/pipedream/Options.h"
#include "algo/petra/Options.h"
#include "algo/interlocking/Options.h"
#include "algo/dtp/Options.h"
#include "algo/parle/Options.h"

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

struct CheckpointSection {
  int everyEpochs = 1;         // 0 = only at the end and on signals
  int64_t everySteps = 0;      // 0 = off
  int keep = 2;                // committed checkpoints kept
  bool fallback = true;        // resume: a damaged latest checkpoint falls back to the newest that verifies
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
