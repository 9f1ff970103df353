// DtpProgram: one rank's work in one DTP training step, as data (the idea of src/schedule applied
// to DTP, which has no pipeline stages). A pure builder, a cross-rank validator and a printer;
// DtpEngine interprets the instructions. Layer-parallel DTP (amoudgl/distributed-dtp, spec
// seed-dtp.md 4) on P ranks, for a rank r:
//   Load, Forward                      every rank, the same batch (data is not parallelised)
//   TrainFeedback i                    for each feedback block G_i with owner[i] == r
//   SyncFeedback i (owner[i])          for i = 1..L on every rank: broadcast of G_i's weight
//   ComputeTargets, LocalLoss, OptimizerStep
//                                      every rank, redundantly, with the gathered G^{t+1}
// Sequential DTP is the same program with every block owned by the only rank and no syncs, which
// is why the two compute the same thing (spec 4.4: F is frozen during the feedback phase, so the
// blocks' L-DRL problems are independent and nothing is stale).
#pragma once
#include <string>
#include <vector>

#include "schedule/Instruction.h"

namespace sw::dtp {

struct DtpInstr {
  Op op;
  int layer = -1;  // feedback block index (TrainFeedback, SyncFeedback)
  int owner = -1;  // rank that trains `layer` (SyncFeedback: the broadcast's root)
  bool operator==(const DtpInstr&) const = default;
};
using DtpProgram = std::vector<DtpInstr>;

enum class Assign { kBalanced, kRoundRobin };
Assign parseAssign(const std::string& s);  // "balanced" | "round_robin"; throws ConfigError

// owner[i] for feedback blocks i = 0..L (owner[0] = -1: G_0 is never trained). cost[i] is G_i's
// feedback work per step. kBalanced minimises the most loaded rank (exact search when P^L is
// small, else longest-processing-time first); kRoundRobin puts G_i on rank i % P, the reference's
// mapping (with P = L + 1, rank i trains G_i and rank 0 only updates F).
std::vector<int> assignLayers(const std::vector<double>& cost, int world, Assign mode);

DtpProgram buildDtpProgram(int rank, int world, const std::vector<int>& owner);

// Checks the programs of all ranks together: each program loads, runs forward before training
// feedback, trains exactly the blocks it owns, issues the same SyncFeedback sequence as every
// other rank (collectives match, so no deadlock), covers every trainable block, and computes
// targets only after all syncs. Returns "" or the first problem found.
std::string validateDtpPrograms(const std::vector<DtpProgram>& programs, const std::vector<int>& owner);

std::string str(const DtpInstr& in);
// One line per rank: "rank 1: Load Forward TrainFeedback(G1) Sync(G1<-1) ...".
std::string describe(const std::vector<DtpProgram>& programs);

}  // namespace sw::dtp
