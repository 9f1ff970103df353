// Checkpoint shards in HDF5 (see Checkpoint.h for the layout and the commit protocol).
#include "io/Checkpoint.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/Error.h"
#include "core/Strings.h"
#include "io/H5.h"

namespace fs = std::filesystem;

namespace sw {
namespace {
constexpr int64_t kFormatVersion = 2;

std::string pad(int64_t v, int w) {
  std::string s = std::to_string(v);
  return std::string(std::max<int>(0, w - int(s.size())), '0') + s;
}

std::string hex(uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

// 1 to 16 hex digits, nothing else (std::stoull would take "-1", " 12" or "12zz").
std::optional<uint64_t> unhex(const std::string& s) {
  if (s.empty() || s.size() > 16 || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
    return std::nullopt;
  return std::stoull(s, nullptr, 16);
}

// A value that names what is wrong in a message: at most 40 characters of its JSON.
std::string shortJson(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}

// A manifest value that must be an integer in [lo, hi] (DamagedError naming `origin` otherwise).
// nlohmann's get<int>() would convert a float or a larger integer silently (a float out of range
// with undefined behaviour).
int64_t jsonInt(const nlohmann::json& v, const std::string& what, int64_t lo, int64_t hi, const std::string& origin) {
  bool ok = v.is_number_integer();
  int64_t x = 0;
  if (ok && v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    ok = u <= uint64_t(INT64_MAX);
    x = int64_t(u);
  } else if (ok) {
    x = v.get<int64_t>();
  }
  if (!ok || x < lo || x > hi)
    throw DamagedError(origin + ": " + what + " = " + shortJson(v) + ", expected an integer in [" + std::to_string(lo) +
                       ", " + std::to_string(hi) + "]");
  return x;
}

// The most ranks a manifest may name (the topology's bound on ranks, as runtime.fault's).
constexpr int64_t kMaxWorld = int64_t(1) << 20;

// The "files" list of a manifest (or of a rank, gathered at commit); `world` bounds the ranks.
std::vector<ShardFile> shardFilesOf(const nlohmann::json& a, const std::string& origin, int64_t world) {
  if (!a.is_array()) throw DamagedError(origin + ": files = " + shortJson(a) + ", expected a list");
  std::vector<ShardFile> out;
  for (const auto& e : a) {
    if (!e.is_object()) throw DamagedError(origin + ": file entry " + shortJson(e) + " is not an object");
    const nlohmann::json& name = e.at("name");
    const nlohmann::json& digest = e.at("digest");
    // A name inside the step directory: verify() opens DIR/NAME.
    if (!name.is_string() || name.get<std::string>().empty() || name.get<std::string>().find('/') != std::string::npos ||
        name.get<std::string>() == "." || name.get<std::string>() == "..")
      throw DamagedError(origin + ": file name " + shortJson(name) + " is not a file name in the step directory");
    const std::optional<uint64_t> d = digest.is_string() ? unhex(digest.get<std::string>()) : std::nullopt;
    if (!d) throw DamagedError(origin + ": digest " + shortJson(digest) + " of " + name.get<std::string>() +
                               ", expected up to 16 hex digits");
    out.push_back({.name = name.get<std::string>(), .rank = int(jsonInt(e.at("rank"), "rank", 0, world - 1, origin)),
                   .bytes = jsonInt(e.at("bytes"), "bytes", 0, INT64_MAX, origin), .digest = *d});
  }
  return out;
}

bool isStepName(const std::string& n) { return n.rfind("step_", 0) == 0; }

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
  if (!meta.sample.empty()) {
    std::string s;
    for (int64_t d : meta.sample) s += (s.empty() ? "" : ",") + std::to_string(d);
    f.setAttr("/", "sample_shape", s);
    f.setAttr("/", "classes", meta.classes);
  }
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
  if (f.hasAttr("/", "sample_shape")) {
    const std::string shape = f.attrString("/", "sample_shape");
    std::stringstream ss(shape);
    for (std::string d; std::getline(ss, d, ',');) {
      const std::optional<int64_t> x = parseInt(d);
      if (!x || *x <= 0)
        throw DamagedError(f.path() + ": attribute sample_shape = '" + shape + "', expected positive sizes C,H,W");
      m.sample.push_back(*x);
    }
    m.classes = f.attrInt("/", "classes");
  }
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

void expectShardOf(const ShardMeta& got, const ShardMeta& want, const std::string& stepDir) {
  if (got.model != want.model)
    throw InputError(stepDir + ": checkpoint is of model '" + got.model + "', config says '" + want.model + "'");
  if (want.world > 0 && got.world != want.world)
    throw InputError(stepDir + ": checkpoint was written by " + std::to_string(got.world) + " ranks, this job has " +
                     std::to_string(want.world));
  if (got.algo != want.algo)
    throw InputError(stepDir + ": checkpoint is of train.algo = " + got.algo + ", config says " + want.algo);
}

CheckpointStore::CheckpointStore(std::string runDir) : root_(std::move(runDir) + "/checkpoints") {}

std::string CheckpointStore::stepDir(int64_t step) const { return root_ + "/step_" + pad(step, 9); }

namespace {

// What a shard's tensors take (parameters, their gradients, buffers, optimizer state) plus room
// for HDF5's metadata: the space a checkpoint write needs.
int64_t shardBytes(Model& model, BlockRange range, Optimizer& opt) {
  int64_t b = 1 << 20;
  for (Param* p : model.params(range)) b += 2 * int64_t(p->value.bytes()) + 4096;
  for (Buffer* x : model.buffers(range)) b += int64_t(x->value.bytes()) + 4096;
  for (const ParamState& s : opt.state())
    for (const Tensor* t : {&s.buf, &s.m, &s.v, &s.vmax, &s.lastD})
      if (t->defined()) b += int64_t(t->bytes()) + 4096;
  return b;
}

// A full disk is found before HDF5 starts writing: bad luck mid-file leaves HDF5 in a state it
// cannot clean up (io/H5.h, closeFailed).
void requireSpace(const std::string& dir, int64_t bytes) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return;  // unknown: let the write tell
  const int64_t avail = int64_t(st.f_bavail) * int64_t(st.f_frsize);
  if (avail < bytes)
    throw IoError(dir + ": " + std::to_string(avail) + " bytes free, a checkpoint shard needs about " +
                  std::to_string(bytes) + " (disk full?)");
}

}  // namespace

void CheckpointStore::writeShard(int64_t step, const ShardMeta& meta, Model& model, BlockRange range,
                                 Optimizer& opt, const TrainProgress& p, const Rng::State& dropoutRng) {
  const std::string dir = stepDir(step);
  fs::create_directories(dir);
  const std::string path = dir + "/rank_" + pad(meta.rank, 5) + ".h5";
  const std::string tmp = path + ".tmp";
  Backend& be = model.backend();
  requireSpace(dir, shardBytes(model, range, opt));
  try {
    h5::File f(tmp, h5::Access::kCreate);
    f.setChecksums(checksums_);
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
    if (checksums_) written_[path] = f.digest();  // from what was written: no walk of the file
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);  // a failed write leaves no partial file
    throw;
  }
  fsyncPath(tmp);
  fs::rename(tmp, path);
  fsyncPath(dir);
}

std::string shardFilesJson(const std::vector<ShardFile>& files) {
  nlohmann::json a = nlohmann::json::array();
  for (const ShardFile& f : files)
    a.push_back({{"name", f.name}, {"rank", f.rank}, {"bytes", f.bytes}, {"digest", hex(f.digest)}});
  return a.dump();
}

std::vector<ShardFile> parseShardFilesJson(const std::string& text) {
  return shardFilesOf(nlohmann::json::parse(text), "shard file list", kMaxWorld);
}

Manifest readManifest(const std::string& dir) {
  const std::string path = dir + "/COMMITTED";
  std::ifstream in(path);
  if (!in) throw DamagedError(path + ": no commit marker (the checkpoint was never committed)");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  Manifest m;
  if (text.rfind("step ", 0) == 0) {  // format 1: "step N\nworld W\n", no checksums
    std::istringstream is(text);
    std::string k;
    is >> k >> m.step >> k >> m.world;
    if (!is || m.step < 0 || m.world < 1 || m.world > kMaxWorld)
      throw DamagedError(path + ": unreadable format-1 commit marker (expected \"step N\\nworld W\" with N >= 0, W >= 1)");
    m.replicas = m.world;
    return m;
  }
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    if (!j.is_object()) throw DamagedError(path + ": not a stagewise checkpoint manifest (not a JSON object)");
    const int64_t format = jsonInt(j.at("format"), "format", INT64_MIN, INT64_MAX, path);
    if (format != kFormatVersion)
      throw DamagedError(path + ": checkpoint format " + std::to_string(format) + ", this build reads " +
                         std::to_string(kFormatVersion) + " and 1");
    m.format = int(format);
    m.step = jsonInt(j.at("step"), "step", 0, INT64_MAX, path);
    m.world = int(jsonInt(j.at("world"), "world", 1, kMaxWorld, path));
    m.stages = int(jsonInt(j.at("stages"), "stages", 1, m.world, path));
    m.replicas = int(jsonInt(j.at("replicas"), "replicas", 1, m.world, path));
    const nlohmann::json& parts = j.at("partition");
    if (!parts.is_array()) throw DamagedError(path + ": partition = " + shortJson(parts) + ", expected a list");
    for (const auto& p : parts) {
      if (!p.is_array() || p.size() != 2)
        throw DamagedError(path + ": partition range " + shortJson(p) + ", expected [first block, end block]");
      m.parts.push_back({size_t(jsonInt(p[0], "partition block", 0, INT64_MAX, path)),
                         size_t(jsonInt(p[1], "partition block", 0, INT64_MAX, path))});
    }
    m.files = shardFilesOf(j.at("files"), path, m.world);
  } catch (const nlohmann::json::exception& e) {
    throw DamagedError(path + ": not a stagewise checkpoint manifest (" + e.what() + ")");
  }
  return m;
}

std::vector<ShardFile> CheckpointStore::rankFiles(int64_t step, int rank) const {
  const std::string dir = stepDir(step), suffix = "rank_" + pad(rank, 5) + ".h5";
  std::vector<ShardFile> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.size() < suffix.size() || n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    if (n != suffix && n[n.size() - suffix.size() - 1] != '_') continue;  // rank_00001.h5 vs rank_000001.h5
    const std::string path = e.path().string();
    uint64_t digest = 0;
    if (auto it = written_.find(path); it != written_.end()) digest = it->second;
    else if (checksums_) digest = h5::File(path, h5::Access::kRead).digestFromFile();  // an algorithm's file
    out.push_back({.name = n, .rank = rank, .bytes = int64_t(fs::file_size(e.path())), .digest = digest});
  }
  std::sort(out.begin(), out.end(), [](const ShardFile& a, const ShardFile& b) { return a.name < b.name; });
  return out;
}

void CheckpointStore::discard(int64_t step) {
  const std::string dir = stepDir(step);
  if (fs::exists(dir + "/COMMITTED")) return;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

void CheckpointStore::verify(const std::string& dir, int rank) {
  const Manifest m = readManifest(dir);
  if (m.format == 1) {
    const int lo = rank < 0 ? 0 : rank, hi = rank < 0 ? m.world : rank + 1;
    for (int r = lo; r < hi; ++r)
      if (!fs::exists(dir + "/rank_" + pad(r, 5) + ".h5"))
        throw DamagedError(dir + "/rank_" + pad(r, 5) + ".h5: shard missing");
    return;
  }
  bool any = false;
  for (const ShardFile& f : m.files) {
    if (rank >= 0 && f.rank != rank) continue;
    any = true;
    const std::string path = dir + "/" + f.name;
    if (!fs::exists(path)) throw DamagedError(path + ": missing (the manifest lists it)");
    const int64_t bytes = int64_t(fs::file_size(path));
    if (bytes != f.bytes)
      throw DamagedError(path + ": " + std::to_string(bytes) + " bytes, the manifest says " + std::to_string(f.bytes) +
                         " (truncated or replaced)");
    // The digest first (metadata only: another run's or step's file, a changed attribute), then
    // every dataset's bytes. HDF5 failing on a damaged file is damage too, not a failed run.
    try {
      h5::File h(path, h5::Access::kRead);
      const uint64_t d = h.digestFromFile();
      if (d != f.digest)
        throw DamagedError(path + ": content digest " + hex(d) + ", the manifest says " + hex(f.digest) +
                           " (a file of another run or step, or a changed attribute)");
      h.verifyAll();
    } catch (const DamagedError&) {
      throw;
    } catch (const std::exception& e) {
      throw DamagedError(path + ": unreadable (" + e.what() + ")");
    }
  }
  if (rank >= 0 && !any) throw DamagedError(dir + ": the manifest lists no file of rank " + std::to_string(rank));
}

std::string CheckpointStore::quarantine(const std::string& dir) {
  const fs::path p(dir);
  fs::path to = p.parent_path() / ("damaged_" + p.filename().string());
  for (int k = 1; fs::exists(to); ++k) to = p.parent_path() / ("damaged_" + p.filename().string() + "." + std::to_string(k));
  fs::rename(p, to);
  return to.string();
}

void CheckpointStore::commit(const Manifest& m, int keep) {
  const int64_t step = m.step;
  const std::string dir = stepDir(step);
  for (int r = 0; r < m.world; ++r)
    if (!fs::exists(dir + "/rank_" + pad(r, 5) + ".h5"))
      throw IoError(dir + ": shard of rank " + std::to_string(r) + " missing at commit");
  nlohmann::json j{{"format", kFormatVersion}, {"step", step}, {"world", m.world}, {"stages", m.stages},
                   {"replicas", m.replicas}};
  j["partition"] = nlohmann::json::array();
  for (const BlockRange& b : m.parts) j["partition"].push_back({b.begin, b.end});
  j["files"] = nlohmann::json::parse(shardFilesJson(m.files));
  writeFileAtomic(dir + "/COMMITTED", j.dump(1) + "\n");
  writeFileAtomic(root_ + "/LATEST", fs::path(dir).filename().string() + "\n");
  // Prune older committed steps beyond `keep`, and uncommitted leftovers older than this one.
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(root_))
    if (e.is_directory() && isStepName(e.path().filename().string()))
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
  const std::vector<std::string> steps = committed();
  if (!steps.empty()) best = steps.front();
  return best;
}

std::vector<std::string> CheckpointStore::committed() const {
  std::vector<std::string> steps;
  if (!fs::exists(root_)) return steps;
  for (const auto& e : fs::directory_iterator(root_))
    if (e.is_directory() && isStepName(e.path().filename().string()) && fs::exists(e.path() / "COMMITTED"))
      steps.push_back(e.path().string());
  std::sort(steps.rbegin(), steps.rend());
  return steps;
}

void CheckpointStore::readShard(const std::string& dir, int rank, Model& model, BlockRange range, Optimizer& opt,
                                TrainProgress& p, Rng::State& dropoutRng, ShardMeta* meta) const {
  const std::string path = rankFilePath(dir, "", rank);
  if (!fs::exists(dir + "/COMMITTED"))
    throw InputError(dir + ": checkpoint is not committed (incomplete write); not resuming from it");
  // HDF5 failures on a file that verified are damage too (exit 2, not a run failure).
  try {
    readShardFile(path, model, range, opt, p, dropoutRng, meta);
  } catch (const IoError& e) {
    throw DamagedError(e.what());
  }
}

namespace {

void checkFormat(const h5::File& f) {
  const int64_t ver = f.attrInt("/", "format_version");
  if (ver != kFormatVersion && ver != 1)  // format 1: the same layout without checksums
    throw DamagedError(f.path() + ": checkpoint format version " + std::to_string(ver) + ", this build reads 1 and " +
                       std::to_string(kFormatVersion));
}

// Header, optimizer step count and dropout RNG of one shard.
ShardMeta readPosition(const h5::File& f, Optimizer& opt, TrainProgress& p, Rng::State& dropoutRng) {
  const ShardMeta m = readShardHeader(f, p);
  opt.setStepCount(f.attrInt("/", "optimizer_steps"));
  auto r = f.readInt64("/rng/dropout");
  if (r.size() != dropoutRng.size()) throw InputError(f.path() + ": bad /rng/dropout");
  for (size_t i = 0; i < r.size(); ++i) dropoutRng[i] = uint64_t(r[i]);
  return m;
}

// One parameter's value, pending gradient (mid-accumulation) and optimizer state.
void readParam(const h5::File& f, Backend& be, Param& prm, ParamState& s, bool grads) {
  readInto(f, "/params/" + prm.name, be, prm.value, "parameter");
  const std::string g = "/grads/" + prm.name;
  if (grads && f.exists(g)) {
    readInto(f, g, be, prm.grad, "gradient");
    prm.gradFresh = false;
  } else {
    prm.gradFresh = true;
  }
  const std::string base = "/optim/" + prm.name;
  s = ParamState{};
  if (!f.exists(base)) return;
  auto load = [&](const std::string& k, Tensor& t) {
    if (!f.exists(base + "/" + k)) return;
    t = be.zeros(prm.value.shape());
    readInto(f, base + "/" + k, be, t, "optimizer state");
  };
  load("buf", s.buf);
  load("m", s.m);
  load("v", s.v);
  load("vmax", s.vmax);
  load("last_d", s.lastD);
  const std::vector<int64_t> steps = f.readInt64(base + "/steps");
  if (steps.size() != 1 || steps[0] < 0)
    throw DamagedError(f.path() + ": optimizer state '" + base + "/steps' should hold one non-negative count");
  s.steps = steps[0];
}

}  // namespace

void CheckpointStore::readShardFile(const std::string& path, Model& model, BlockRange range, Optimizer& opt,
                                    TrainProgress& p, Rng::State& dropoutRng, ShardMeta* meta) const {
  h5::File f(path, h5::Access::kRead);
  checkFormat(f);
  const ShardMeta m = readPosition(f, opt, p, dropoutRng);
  if (meta) *meta = m;
  Backend& be = model.backend();
  auto params = model.params(range);
  auto& st = opt.state();
  for (size_t i = 0; i < params.size(); ++i) readParam(f, be, *params[i], st[i], p.microbatches > 0);
  for (Buffer* b : model.buffers(range)) readInto(f, "/buffers/" + b->name, be, b->value, "buffer");
}

void CheckpointStore::readResharded(const ResumeSource& src, Model& model, BlockRange range, Optimizer& opt,
                                    TrainProgress& p, Rng::State& dropoutRng, ShardMeta* meta,
                                    std::vector<std::string>* fresh) const {
  const std::string& dir = src.stepDir;
  if (!fs::exists(dir + "/COMMITTED"))
    throw InputError(dir + ": checkpoint is not committed (incomplete write); not resuming from it");
  try {
    SourceFiles files(src, "");
    const size_t nb = model.numBlocks();
    range.end = std::min(range.end, nb);
    const int head = src.rankHolding(range.begin);
    if (head < 0) throw InputError(dir + ": no shard holds block " + std::to_string(range.begin));
    h5::File& hf = files.at(head);
    checkFormat(hf);
    const ShardMeta m = readPosition(hf, opt, p, dropoutRng);
    if (meta) *meta = m;
    auto holder = [&](size_t block, const std::string& obj) { return files.find(obj, block); };
    Backend& be = model.backend();
    auto params = model.params(range);
    auto& st = opt.state();
    std::map<const Param*, size_t> index;
    for (size_t i = 0; i < params.size(); ++i) index[params[i]] = i;
    for (size_t b = range.begin; b < range.end; ++b) {
      const auto mainParams = model.params({b, b + 1}, Aux::kExclude);
      for (Param* prm : model.params({b, b + 1})) {
        const bool aux = std::find(mainParams.begin(), mainParams.end(), prm) == mainParams.end();
        h5::File* f = holder(b, "/params/" + prm->name);
        if (!f) {
          if (aux && fresh) {
            fresh->push_back(prm->name);
            st[index.at(prm)] = ParamState{};
            prm->gradFresh = true;
            continue;
          }
          throw InputError(dir + ": no shard of the checkpoint (written by " + src.describe() + ") holds parameter '" +
                           prm->name + "' of block " + std::to_string(b));
        }
        readParam(*f, be, *prm, st[index.at(prm)], p.microbatches > 0);
      }
      const auto mainBuffers = model.buffers({b, b + 1}, Aux::kExclude);
      for (Buffer* x : model.buffers({b, b + 1})) {
        const bool aux = std::find(mainBuffers.begin(), mainBuffers.end(), x) == mainBuffers.end();
        h5::File* f = holder(b, "/buffers/" + x->name);
        if (!f) {
          if (aux && fresh) continue;
          throw InputError(dir + ": no shard of the checkpoint (written by " + src.describe() + ") holds buffer '" +
                           x->name + "' of block " + std::to_string(b));
        }
        readInto(*f, "/buffers/" + x->name, be, x->value, "buffer");
      }
    }
  } catch (const IoError& e) {
    throw DamagedError(e.what());
  }
}

SourceFiles::SourceFiles(const ResumeSource& src, std::string prefix) : src_(src), prefix_(std::move(prefix)) {}
SourceFiles::~SourceFiles() = default;

h5::File& SourceFiles::at(int r) {
  auto& f = open_[r];
  if (!f) {
    const std::string path = rankFilePath(src_.stepDir, prefix_, r);
    if (!fs::exists(path)) throw InputError(path + ": missing (the checkpoint's rank " + std::to_string(r) + ")");
    try {
      f = std::make_unique<h5::File>(path, h5::Access::kRead);
    } catch (const IoError& e) {
      throw DamagedError(e.what());
    }
  }
  return *f;
}

h5::File* SourceFiles::find(const std::string& obj, size_t block) {
  const int first = src_.rankHolding(block);
  if (first >= 0 && at(first).exists(obj)) return &at(first);
  for (int r : src_.ranks)
    if (r != first && at(r).exists(obj)) return &at(r);
  return nullptr;
}

std::string rankFilePath(const std::string& stepDir, const std::string& prefix, int rank) {
  return stepDir + "/" + prefix + "rank_" + pad(rank, 5) + ".h5";
}

int ResumeSource::rankHolding(size_t block) const {
  if (sameShape) return ranks.empty() ? rank : ranks.front();
  const Manifest& m = manifest;
  for (size_t s = 0; s < m.parts.size(); ++s)
    if (block >= m.parts[s].begin && block < m.parts[s].end) return ranks.at(s);
  return -1;
}

std::string ResumeSource::describe() const {
  const Manifest& m = manifest;
  std::ostringstream os;
  os << m.world << " rank(s) = " << m.replicas << " replica(s) x " << m.stages << " stage(s)";
  if (m.stages > 1)
    for (size_t s = 0; s < m.parts.size(); ++s)
      os << (s ? ", " : "; ") << "stage " << s << " blocks " << m.parts[s].begin << ".." << m.parts[s].end - 1;
  return os.str();
}

ResumeSource resumeSource(const std::string& stepDir, int rank, int world, int stages, int replicas, int replica,
                          const std::vector<BlockRange>& parts, size_t numBlocks) {
  ResumeSource src{.stepDir = stepDir, .manifest = readManifest(stepDir), .rank = rank};
  Manifest& m = src.manifest;
  auto norm = [&](std::vector<BlockRange> v) {
    for (BlockRange& r : v) r.end = std::min(r.end, numBlocks);
    return v;
  };
  auto same = [](const std::vector<BlockRange>& a, const std::vector<BlockRange>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].begin != b[i].begin || a[i].end != b[i].end) return false;
    return true;
  };
  if (m.format == 1) {  // no topology recorded: only the same rank count can read it
    src.ranks = {rank};
    if (m.world != world)
      throw InputError(stepDir + ": a format-1 checkpoint (no topology in its manifest) written by " +
                       std::to_string(m.world) + " ranks cannot be resumed on " + std::to_string(world));
    return src;
  }
  std::vector<BlockRange> old = norm(m.parts);
  if (m.parts.empty()) old = {{0, numBlocks}};
  src.sameShape = m.world == world && m.stages == stages && m.replicas == replicas && same(old, norm(parts));
  if (src.sameShape) {
    src.ranks = {rank};
    src.sourceReplica = replica;
    return src;
  }
  if (int(old.size()) != m.stages || m.stages * m.replicas != m.world)
    throw InputError(stepDir + "/COMMITTED: " + std::to_string(m.stages) + " stage(s) x " +
                     std::to_string(m.replicas) + " replica(s) with " + std::to_string(old.size()) +
                     " partition ranges for " + std::to_string(m.world) + " ranks");
  size_t next = 0;
  for (const BlockRange& r : old) {
    if (r.begin != next || r.end <= r.begin)
      throw InputError(stepDir + "/COMMITTED: the partition does not cover the model's " + std::to_string(numBlocks) +
                       " blocks in order (a checkpoint of another model?)");
    next = r.end;
  }
  if (next != numBlocks)
    throw InputError(stepDir + "/COMMITTED: the partition covers " + std::to_string(next) + " blocks, the model has " +
                     std::to_string(numBlocks));
  m.parts = old;
  src.sourceReplica = replica % m.replicas;
  // rank = replica * stages + stage (comm/Topology.h)
  for (int s = 0; s < m.stages; ++s) src.ranks.push_back(src.sourceReplica * m.stages + s);
  return src;
}

}  // namespace sw
