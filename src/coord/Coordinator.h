// Coordinator: the control plane of a run, led by rank 0. Every rank calls the same functions in
// the same order (they are collectives on the world communicator); rank 0 decides and writes.
//   agree()        runs a fallible phase on every rank, then lets every rank learn whether any
//                  failed, so a bad data file on rank 3 stops all ranks with status 2, not a hang;
//   roundEnd()     one small allreduce per round: loss/accuracy sums from the stages that own
//                  the loss, and the stop decision (signal on any rank, step limit);
//   commit()       after every rank wrote its checkpoint shard: barrier, then rank 0 writes the
//                  COMMITTED marker (a half-written checkpoint is never resumed).
// No tensor data passes through rank 0.
#pragma once
#include <functional>
#include <string>

#include "comm/Communicator.h"
#include "core/Error.h"

namespace sw {

// Thrown on ranks whose own phase succeeded when another rank's failed: main exits with `code`
// without printing (the failing rank printed the cause).
class PeerFailure : public Error {
 public:
  PeerFailure(int code, int rank)
      : Error("rank " + std::to_string(rank) + " failed"), code_(code), rank_(rank) {}
  int code() const { return code_; }
  int failedRank() const { return rank_; }

 private:
  int code_, rank_;
};

// Runs `phase`; if it throws on any rank, rethrows there and throws PeerFailure elsewhere.
// InputError counts as status 2, anything else 3.
void agree(Communicator& world, const std::function<void()>& phase);
// True once an agree() ended in failure on this rank: every rank knows, so main may exit
// normally instead of aborting the job.
bool failureWasAgreed();
// How this rank reports the error an agree() rethrew (main prints it). An error every failing
// rank found alike (a configuration error every rank sees) is printed once, by the lowest of
// them, under `who` ("stagewise: " when every rank failed, "[ranks 1,3 of 4] " otherwise);
// the others stay silent. An error of one rank, or one that differs between ranks, is printed
// by each rank under its own prefix (who empty).
struct ErrorReport {
  bool silent = false;
  std::string who;
};
const ErrorReport& agreedErrorReport();

struct RoundTotals {
  double lossSum = 0;
  double correct = 0, seen = 0;
  bool stop = false;
};
// Sums the round's loss statistics over the world and ORs the stop flags.
RoundTotals roundEnd(Communicator& world, double lossSum, int64_t correct, int64_t seen, bool stopLocal);

// Barrier after all shards are written, then rank 0 runs `commitFn`.
void commitCheckpoint(Communicator& world, const std::function<void()>& commitFn);

}  // namespace sw
