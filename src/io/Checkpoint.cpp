// Checkpoint shards in HDF5 (see Checkpoint.h for the layout and the commit protocol).
#include "io/Checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/Error.h"
#include "io/H5.h"

namespace fs = std::filesystem;

namespace sw {
namespace {
constexpr int64_t kFormatVersion = 1;

std::string pad(int64_t v, int w) {
  std::string s = std::to_string(v);
  return std::string(std::max<int>(0, w - int(s.size())), '0') + s;
}

void writeHost(h5::File& f, const std::string& obj, Backend& be, const Tensor& t) {
  f.writeTensor(obj, be.toHost(t));
}

void readInto(const h5::File& f, const std::string& obj, Backend& be, Tensor& dst,
              const std::string& what) {
  if (!f.exists(obj)) throw InputError(f.path() + ": checkpoint lacks " + what + " '" + obj + "'");
  Tensor h = f.readTensor(obj);
  if (h.shape() != dst.shape())
    throw InputError(f.path() + ": " + what + " '" + obj + "' has shape " + h.shape().str() +
                     ", the model expects " + dst.shape().str());
  be.copy(h, dst);
}
}  // namespace

void fsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw IoError(path + ": cannot open for fsync");
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw IoError(path + ": fsync failed");
}

void writeFileAtomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream o(tmp, std::ios::trunc);
    if (!o) throw IoError(tmp + ": cannot write");
    o << text;
    o.flush();
    if (!o) throw IoError(tmp + ": write failed");
  }
  fsyncPath(tmp);
  fs::rename(tmp, path);
  fsyncPath(fs::path(path).parent_path().string());
}

void writeShardHeader(h5::File& f, const ShardMeta& meta, const TrainProgress& p) {
  f.setAttr("/", "algo", meta.algo);
  f.setAttr("/", "model", meta.model);
  f.setAttr("/", "rank", int64_t(meta.rank));
  f.setAttr("/", "world", int64_t(meta.world));
  f.setAttr("/", "config", meta.configText);
  f.setAttr("/", "epoch", int64_t(p.epoch));
  f.setAttr("/", "batch", p.batch);
  f.setAttr("/", "step", p.step);
  f.setAttr("/", "microbatches", p.microbatches);
  f.setAttr("/", "loss_sum", p.lossSum);
  f.setAttr("/", "correct", p.correct);
  f.setAttr("/", "seen", p.seen);
  f.setAttr("/", "wall_seconds", p.wallSeconds);
  f.setAttr("/", "metrics_bytes", p.metricsBytes);
}

ShardMeta readShardHeader(const h5::File& f, TrainProgress& p) {
  ShardMeta m{.algo = f.attrString("/", "algo"), .model = f.attrString("/", "model"),
              .rank = int(f.attrInt("/", "rank")), .world = int(f.attrInt("/", "world")),
              .configText = f.attrString("/", "config")};
  p.epoch = int(f.attrInt("/", "epoch"));
  p.batch = f.attrInt("/", "batch");
  p.step = f.attrInt("/", "step");
  p.microbatches = f.hasAttr("/", "microbatches") ? f.attrInt("/", "microbatches") : 0;
  p.lossSum = f.attrDouble("/", "loss_sum");
  p.correct = f.attrInt("/", "correct");
  p.seen = f.attrInt("/", "seen");
  p.wallSeconds = f.attrDouble("/", "wall_seconds");
  p.metricsBytes = f.attrInt("/", "metrics_bytes");
  return m;
}

CheckpointStore::CheckpointStore(std::string runDir) : root_(std::move(runDir) + "/checkpoints") {}

std::string CheckpointStore::stepDir(int64_t step) const { return root_ + "/step_" + pad(step, 9); }

void CheckpointStore::writeShard(int64_t step, const ShardMeta& meta, Model& model, BlockRange range,
                                 Optimizer& opt, const TrainProgress& p, const Rng::State& dropoutRng) {
  const std::string dir = stepDir(step);
  fs::create_directories(dir);
  const std::string path = dir + "/rank_" + pad(meta.rank, 5) + ".h5";
  const std::string tmp = path + ".tmp";
  Backend& be = model.backend();
  {
    h5::File f(tmp, h5::Access::kCreate);
    f.setAttr("/", "format_version", kFormatVersion);
    writeShardHeader(f, meta, p);
    f.setAttr("/", "optimizer_steps", opt.stepCount());
    f.writeInt64("/rng/dropout", std::vector<int64_t>(dropoutRng.begin(), dropoutRng.end()));
    auto params = model.params(range);
    for (Param* prm : params) {
      writeHost(f, "/params/" + prm->name, be, prm->value);
      // Gradients matter only mid-accumulation (microbatches > 0), but are cheap to keep.
      if (p.microbatches > 0 && !prm->gradFresh) writeHost(f, "/grads/" + prm->name, be, prm->grad);
    }
    for (Buffer* b : model.buffers(range)) writeHost(f, "/buffers/" + b->name, be, b->value);
    auto& st = opt.state();
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string base = "/optim/" + params[i]->name;
      const ParamState& s = st[i];
      if (s.steps == 0) continue;
      if (s.buf.defined()) writeHost(f, base + "/buf", be, s.buf);
      if (s.m.defined()) writeHost(f, base + "/m", be, s.m);
      if (s.v.defined()) writeHost(f, base + "/v", be, s.v);
      if (s.vmax.defined()) writeHost(f, base + "/vmax", be, s.vmax);
      if (s.lastD.defined()) writeHost(f, base + "/last_d", be, s.lastD);
      f.writeInt64(base + "/steps", {s.steps});
    }
    f.flush();
  }
  fsyncPath(tmp);
  fs::rename(tmp, path);
  fsyncPath(dir);
}

void CheckpointStore::commit(int64_t step, int world, int keep) {
  const std::string dir = stepDir(step);
  for (int r = 0; r < world; ++r)
    if (!fs::exists(dir + "/rank_" + pad(r, 5) + ".h5"))
      throw IoError(dir + ": shard of rank " + std::to_string(r) + " missing at commit");
  writeFileAtomic(dir + "/COMMITTED", "step " + std::to_string(step) + "\nworld " + std::to_string(world) + "\n");
  writeFileAtomic(root_ + "/LATEST", fs::path(dir).filename().string() + "\n");
  // Prune older committed steps beyond `keep`, and uncommitted leftovers older than this one.
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(root_))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0)
      steps.push_back(e.path().filename().string());
  std::sort(steps.begin(), steps.end());
  int kept = 0;
  const std::string me = fs::path(dir).filename().string();
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    const fs::path p = fs::path(root_) / *it;
    const bool committed = fs::exists(p / "COMMITTED");
    if (*it > me) continue;  // newer in-flight step (should not happen): leave it
    if (committed && kept < keep) {
      ++kept;
      continue;
    }
    std::error_code ec;
    fs::remove_all(p, ec);
  }
}

std::optional<std::string> CheckpointStore::latest() const {
  std::ifstream in(root_ + "/LATEST");
  std::string name;
  if (in >> name) {
    const std::string dir = root_ + "/" + name;
    if (fs::exists(dir + "/COMMITTED")) return dir;
  }
  // LATEST missing or stale: fall back to the newest committed directory.
  std::optional<std::string> best;
  if (!fs::exists(root_)) return best;
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(root_))
    if (e.is_directory() && fs::exists(e.path() / "COMMITTED")) steps.push_back(e.path().string());
  std::sort(steps.begin(), steps.end());
  if (!steps.empty()) best = steps.back();
  return best;
}

void CheckpointStore::readShard(const std::string& dir, int rank, Model& model, BlockRange range, Optimizer& opt,
                                TrainProgress& p, Rng::State& dropoutRng, ShardMeta* meta) const {
  const std::string path = dir + "/rank_" + pad(rank, 5) + ".h5";
  if (!fs::exists(dir + "/COMMITTED"))
    throw InputError(dir + ": checkpoint is not committed (incomplete write); not resuming from it");
  h5::File f(path, h5::Access::kRead);
  const int64_t ver = f.attrInt("/", "format_version");
  if (ver != kFormatVersion)
    throw InputError(path + ": checkpoint format version " + std::to_string(ver) + ", expected " +
                     std::to_string(kFormatVersion));
  const ShardMeta m = readShardHeader(f, p);
  if (meta) *meta = m;
  Backend& be = model.backend();
  opt.setStepCount(f.attrInt("/", "optimizer_steps"));
  auto r = f.readInt64("/rng/dropout");
  if (r.size() != dropoutRng.size()) throw InputError(path + ": bad /rng/dropout");
  for (size_t i = 0; i < r.size(); ++i) dropoutRng[i] = uint64_t(r[i]);
  auto params = model.params(range);
  for (Param* prm : params) {
    readInto(f, "/params/" + prm->name, be, prm->value, "parameter");
    const std::string g = "/grads/" + prm->name;
    if (p.microbatches > 0 && f.exists(g)) {
      readInto(f, g, be, prm->grad, "gradient");
      prm->gradFresh = false;
    } else {
      prm->gradFresh = true;
    }
  }
  for (Buffer* b : model.buffers(range)) readInto(f, "/buffers/" + b->name, be, b->value, "buffer");
  auto& st = opt.state();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string base = "/optim/" + params[i]->name;
    ParamState& s = st[i];
    s = ParamState{};
    if (!f.exists(base)) continue;
    auto load = [&](const std::string& k, Tensor& t) {
      if (!f.exists(base + "/" + k)) return;
      t = be.zeros(params[i]->value.shape());
      readInto(f, base + "/" + k, be, t, "optimizer state");
    };
    load("buf", s.buf);
    load("m", s.m);
    load("v", s.v);
    load("vmax", s.vmax);
    load("last_d", s.lastD);
    s.steps = f.readInt64(base + "/steps").at(0);
  }
}

}  // namespace sw
