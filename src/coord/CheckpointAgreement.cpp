#include "coord/CheckpointAgreement.h"

#include <sstream>

#include "coord/Coordinator.h"
#include "core/Log.h"

namespace sw {

void writeCheckpoint(Communicator& world, CheckpointStore& store, Manifest m, int rank, int keep,
                     const std::function<void()>& writeFiles) {
  std::vector<ShardFile> mine;
  try {
    agree(world, [&] {
      writeFiles();
      mine = store.rankFiles(m.step, rank);
    });
  } catch (...) {
    store.discard(m.step);  // every rank: its files may be on a disk of its own
    throw;
  }
  for (const std::string& part : allGatherStrings(world, shardFilesJson(mine)))
    for (const ShardFile& f : parseShardFilesJson(part)) m.files.push_back(f);
  commitCheckpoint(world, [&] { store.commit(m, keep); });
}

std::string agreeOnCheckpoint(Communicator& world, const std::string& runDir, int rank, bool fallback, int64_t step) {
  // Every rank sees the run directory (it reads its files where they were written); rank 0's
  // list is the one all ranks walk.
  std::string list;
  agree(world, [&] {
    std::string steps;
    for (const std::string& d : CheckpointStore(runDir).committed()) {
      const int64_t s = readManifest(d).step;
      steps += (steps.empty() ? "" : ", ") + std::to_string(s);
      if (step < 0 || s == step) list += d + "\n";
    }
    if (steps.empty()) throw InputError(runDir + ": no committed checkpoint to resume from");
    if (list.empty())
      throw InputError(runDir + ": no committed checkpoint of step " + std::to_string(step) + " (committed: " + steps +
                       ")");
  });
  world.broadcastString(list, 0);
  std::istringstream steps(list);
  for (std::string dir; std::getline(steps, dir);) {
    std::string why;
    try {
      // The writing job's files, spread over this job's ranks (another rank count: resharding).
      const int written = readManifest(dir).world;
      for (int r = rank; r < written; r += world.size()) CheckpointStore::verify(dir, r);
    } catch (const DamagedError& e) {
      why = e.what();
    }
    std::string first;
    for (const std::string& w : allGatherStrings(world, why))
      if (first.empty()) first = w;
    if (first.empty()) return dir;
    if (!fallback || step >= 0)
      agree(world, [&] {
        if (!why.empty()) throw DamagedError(why + " (checkpoint.fallback = false: not trying older checkpoints)");
      });
    if (world.rank() == 0) {
      const std::string kept = CheckpointStore::quarantine(dir);
      SW_WARN("checkpoint " << dir << " is damaged: " << first << "; kept as " << kept
                            << ", trying the previous committed checkpoint");
    }
    world.barrier();
  }
  agree(world, [&] {
    throw DamagedError(runDir + ": no committed checkpoint verifies (the damaged ones are kept as damaged_step_*)");
  });
  return "";  // not reached: agree rethrows on every rank
}

}  // namespace sw
