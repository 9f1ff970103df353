// Planner: which algorithm, shape (stages x replicas), micro-batch count and partition to run on
// a cluster, predicted from a measured profile. For every candidate it builds the algorithm's
// per-rank programs from the registry - the same programs the executor runs - and simulates
// them with the validator (schedule/Validator.h), pricing each instruction from the profile
// (interpolated at the candidate's micro-batch size) and each message and collective from the
// cluster (plan/Cluster.h). It searches micro-batch counts and, for pipelines, the partition
// (the balanced cut of measured times, then moving single boundaries while the simulated step
// gets faster), and reports per algorithm the best candidate's step time, samples/s, idle and
// memory per rank and staleness, with the config overrides that run it.
#pragma once
#include <string>
#include <vector>

#include "plan/Cluster.h"
#include "plan/Profile.h"
#include "schedule/Schedule.h"
#include "schedule/Validator.h"

namespace sw {

struct PlanOptions {
  std::vector<std::string> algos;       // empty: every registered algorithm
  int ranks = 0;                        // 0: every device of the cluster
  double memoryBytes = 0;               // per rank; 0 = no limit
  std::vector<std::string> overrides;   // config keys on top of the profile's config
  int maxMicrobatches = 32;
  int simBatches = 32;                  // asynchronous rounds longer than this are extrapolated
};

// Memory of one rank, bytes.
struct RankMemory {
  double weights = 0, grads = 0, optimizer = 0, activations = 0, stash = 0, extra = 0;
  double held() const { return activations + stash; }  // what a run reports as peak_held_mb
  double total() const { return weights + grads + optimizer + activations + stash + extra; }
};

struct Candidate {
  std::string algo;
  int stages = 1, replicas = 1, microbatches = 1;
  std::vector<BlockRange> parts;
  int roundBatches = 1;         // mini-batches per round as the trainer runs it
  int updatesPerRound = 1;      // optimizer steps per round
  double roundSeconds = 0;      // predicted, extrapolated to the full round
  double stepSeconds = 0;       // per optimizer step
  double samplesPerSecond = 0;
  std::vector<double> idle;     // per rank
  std::vector<RankMemory> memory;
  std::vector<int> staleness;   // per rank, optimizer steps between forward and backward
  SimResult sim;                // of the simulated round
  ScheduleSpec spec;
  std::vector<std::string> overrides;  // train.algo=..., pipe.stages=..., ...
  double peakMemory() const;
};

struct AlgoPlan {
  std::string algo;
  bool feasible = false;
  std::string why;        // when not feasible: the first reason, e.g. the config error
  int evaluated = 0;      // candidates simulated
  bool overMemory = false;  // feasible shapes exist but none fits the memory limit
  double smallestMemory = 0;  // the least peak memory per rank of any candidate
  Candidate best;
  std::vector<Candidate> shapes;  // the best candidate of each shape (stages x replicas), best first
};

// Throws InputError for a profile that does not match the config's model, ConfigError for bad
// overrides. Algorithms that cannot run get feasible = false with the reason.
std::vector<AlgoPlan> planAll(const Profile& p, const Cluster& c, const PlanOptions& o);

// A candidate priced on its own (tests, `stagewise plan --check`): the given shape, M, partition.
Candidate evaluateCandidate(const Profile& p, const Cluster& c, const PlanOptions& o, const std::string& algo,
                            int stages, int microbatches, const std::vector<BlockRange>* parts);

// The report: one line per algorithm, then the best plan's details and overrides.
std::string planReport(const std::vector<AlgoPlan>& plans, const Profile& p, const Cluster& c);
// One JSON object with every algorithm's best candidate.
std::string planJson(const std::vector<AlgoPlan>& plans, const Profile& p, const Cluster& c);
// The chosen plan's timeline as SVG: a row per rank, a box per instruction.
std::string timelineSvg(const Candidate& c);

}  // namespace sw
