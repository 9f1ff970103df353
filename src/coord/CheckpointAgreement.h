// Checkpoints as collectives: every rank writes and verifies its own files, the ranks agree, and
// rank 0 alone commits or renames. Never a checkpoint half written, never ranks on different steps.
#pragma once
#include <functional>
#include <string>

#include "comm/Communicator.h"
#include "io/Checkpoint.h"

namespace sw {

// Every rank runs `writeFiles` (its files in store.stepDir(m.step)); their sizes and digests are
// gathered into `m` and rank 0 commits it, keeping `keep` checkpoints. A failure on any rank
// removes the step directory on every rank and is rethrown there (PeerFailure elsewhere).
void writeCheckpoint(Communicator& world, CheckpointStore& store, Manifest m, int rank, int keep,
                     const std::function<void()>& writeFiles);

// The newest committed checkpoint of `runDir` whose files verify on every rank (each rank checks
// its own). A damaged one is renamed damaged_step_N by rank 0 with a warning naming the file and
// the next older one is tried, or, with fallback = false, DamagedError on every rank. No
// checkpoint, or none that verifies: InputError / DamagedError on every rank.
// step >= 0: that step's checkpoint only (no fallback; absent: InputError listing the steps).
std::string agreeOnCheckpoint(Communicator& world, const std::string& runDir, int rank, bool fallback,
                              int64_t step = -1);

}  // namespace sw
