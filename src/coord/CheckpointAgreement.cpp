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

std::string agreeOnCheckpoint(Communicator& world, const std::string& runDir, int rank, bool fallback) {
  // Every rank sees the run directory (it reads its files where they were written); rank 0's
  // list is the one all ranks walk.
  std::string list;
  agree(world, [&] {
    for (const std::string& d : CheckpointStore(runDir).committed()) list += d + "\n";
    if (list.empty()) throw InputError(runDir + ": no committed checkpoint to resume from");
  });
  world.broadcastString(list, 0);
  std::istringstream steps(list);
  for (std::string dir; std::getline(steps, dir);) {
    std::string why;
    try {
      CheckpointStore::verify(dir, rank);
    } catch (const DamagedError& e) {
      why = e.what();
    }
    std::string first;
    for (const std::string& w : allGatherStrings(world, why))
      if (first.empty()) first = w;
    if (first.empty()) return dir;
    if (!fallback)
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
