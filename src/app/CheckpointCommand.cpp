#include "app/CheckpointCommand.h"

#include <filesystem>
#include <functional>
#include <iomanip>

#include "core/Error.h"
#include "io/Checkpoint.h"
#include "io/H5.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

const char* kUsage =
    "usage: stagewise checkpoint verify DIR    every committed checkpoint of DIR against its manifest\n"
    "       stagewise checkpoint inspect DIR   the manifest and every dataset of the newest one (verified first)\n"
    "DIR: a run directory, its checkpoints/ directory, or one step_N directory.\n"
    "verify exits 0 when every checkpoint verifies, 2 naming the first damaged file otherwise.\n";

// The step directories DIR stands for, newest first.
std::vector<std::string> stepsOf(const std::string& dir) {
  if (fs::exists(fs::path(dir) / "COMMITTED")) return {dir};
  std::string root = dir;
  if (fs::exists(fs::path(dir) / "checkpoints")) root = (fs::path(dir) / "checkpoints").string();
  if (!fs::is_directory(root)) throw InputError(dir + ": not a run, checkpoints or step directory");
  // CheckpointStore wants the run directory (it appends checkpoints/).
  std::vector<std::string> steps = CheckpointStore(fs::path(root).parent_path().string()).committed();
  if (fs::path(root).filename() != "checkpoints") steps.clear();
  if (steps.empty()) throw InputError(dir + ": no committed checkpoint");
  return steps;
}

void inspect(const std::string& step, std::ostream& out) {
  CheckpointStore::verify(step, -1);  // nothing is shown of a checkpoint that does not verify
  const Manifest m = readManifest(step);
  out << step << ": format " << m.format << ", step " << m.step << ", " << m.world << " rank(s) = " << m.replicas
      << " replica(s) x " << m.stages << " stage(s)";
  for (size_t s = 0; s < m.parts.size(); ++s)
    out << (s ? ", " : "; ") << "stage " << s << " blocks " << m.parts[s].begin << ".." << m.parts[s].end - 1;
  out << "\n";
  if (!m.files.empty() || m.format == 1) {  // who wrote it and where training stood (rank 0's shard)
    h5::File h(rankFilePath(step, "", 0), h5::Access::kRead);
    TrainProgress p;
    const ShardMeta meta = readShardHeader(h, p);
    out << "  algo " << meta.algo << ", model " << meta.model << "; epoch " << p.epoch << ", batch " << p.batch
        << ", optimizer step " << p.step << "; readable on any rank count and partition (resharding)\n";
  }
  for (const ShardFile& f : m.files) {
    out << "  " << f.name << " (rank " << f.rank << ", " << f.bytes << " bytes, digest " << std::hex << std::setw(16)
        << std::setfill('0') << f.digest << std::dec << std::setfill(' ') << ")\n";
    h5::File h(step + "/" + f.name, h5::Access::kRead);
    std::function<void(const std::string&)> walk = [&](const std::string& g) {
      for (const std::string& n : h.list(g)) {
        const std::string obj = (g == "/" ? "" : g) + "/" + n;
        if (h.isGroup(obj)) {
          walk(obj);
          continue;
        }
        out << "    " << obj << " [";
        const auto dims = h.shape(obj);
        for (size_t i = 0; i < dims.size(); ++i) out << (i ? "," : "") << dims[i];
        out << "]\n";
      }
    };
    walk("/");
  }
}

}  // namespace

int checkpointCommand(const std::vector<std::string>& args, std::ostream& out) {
  if (args.size() == 1 && (args[0] == "--help" || args[0] == "-h")) {
    out << kUsage;
    return 0;
  }
  if (args.size() != 2 || (args[0] != "verify" && args[0] != "inspect"))
    throw InputError(std::string("expected verify DIR or inspect DIR\n") + kUsage);
  const std::vector<std::string> steps = stepsOf(args[1]);
  if (args[0] == "inspect") {
    inspect(steps.front(), out);
    return 0;
  }
  for (const std::string& s : steps) {
    CheckpointStore::verify(s, -1);  // throws DamagedError naming the file
    const Manifest m = readManifest(s);
    int64_t bytes = 0;
    for (const ShardFile& f : m.files) bytes += f.bytes;
    out << "ok " << s << " (" << m.files.size() << " files, " << bytes << " bytes"
        << (m.format == 1 ? ", format 1: no checksums" : "") << ")\n";
  }
  return 0;
}

}  // namespace sw
