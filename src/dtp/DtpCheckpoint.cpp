// DTP checkpoint shards (layout in DtpCheckpoint.h). Written to a temporary name, fsynced and
// renamed, like every shard; the commit marker is written by the caller after all ranks are done.
#include "dtp/DtpCheckpoint.h"

#include <filesystem>

#include "core/Error.h"
#include "io/H5.h"

namespace fs = std::filesystem;

namespace sw::dtp {
namespace {
constexpr int64_t kDtpFormat = 1;

std::string shardPath(const std::string& dir, int rank) {
  std::string r = std::to_string(rank);
  return dir + "/rank_" + std::string(5 - std::min<size_t>(5, r.size()), '0') + r + ".h5";
}

void writeState(h5::File& f, Backend& be, const std::string& base, const std::vector<Param*>& params, Optimizer& opt,
                const std::string& stepsAttr) {
  auto& st = opt.state();
  for (size_t i = 0; i < params.size(); ++i) {
    if (st[i].steps == 0) continue;
    const std::string k = base + params[i]->name;
    if (st[i].buf.defined()) f.writeTensor(k + "/buf", be.toHost(st[i].buf));
    f.writeInt64(k + "/steps", {st[i].steps});
  }
  f.setAttr("/", stepsAttr, opt.stepCount());
}

void readInto(const h5::File& f, Backend& be, const std::string& obj, Tensor& dst) {
  if (!f.exists(obj)) throw InputError(f.path() + ": DTP checkpoint lacks '" + obj + "'");
  const Tensor h = f.readTensor(obj);
  if (h.shape() != dst.shape())
    throw InputError(f.path() + ": '" + obj + "' has shape " + h.shape().str() + ", the model expects " +
                     dst.shape().str());
  be.copy(h, dst);
}

void readState(const h5::File& f, Backend& be, const std::string& base, const std::vector<Param*>& params,
               Optimizer& opt, const std::string& stepsAttr) {
  auto& st = opt.state();
  for (size_t i = 0; i < params.size(); ++i) {
    st[i] = ParamState{};
    const std::string k = base + params[i]->name;
    if (!f.exists(k + "/steps")) continue;
    st[i].steps = f.readInt64(k + "/steps").at(0);
    if (f.exists(k + "/buf")) {
      st[i].buf = be.zeros(params[i]->value.shape());
      readInto(f, be, k + "/buf", st[i].buf);
    }
  }
  if (!f.hasAttr("/", stepsAttr)) throw InputError(f.path() + ": DTP checkpoint lacks attribute " + stepsAttr);
  opt.setStepCount(f.attrInt("/", stepsAttr));
}
}  // namespace

void writeDtpShard(const CheckpointStore& store, int64_t step, const DtpShardMeta& meta, Model& fwd, FeedbackNet& g,
                   DtpEngine& engine, const TrainProgress& p) {
  const std::string dir = store.stepDir(step);
  fs::create_directories(dir);
  const std::string path = shardPath(dir, meta.rank), tmp = path + ".tmp";
  Backend& be = fwd.backend();
  {
    h5::File f(tmp, h5::Access::kCreate);
    f.setAttr("/", "format_version", int64_t(1));
    f.setAttr("/", "dtp_format", kDtpFormat);
    writeShardHeader(f, ShardMeta{.algo = meta.algo, .model = meta.model, .rank = meta.rank, .world = meta.world,
                                  .configText = meta.configText},
                     p);
    f.writeInt64("/dtp/owner", std::vector<int64_t>(meta.owner.begin(), meta.owner.end()));
    for (Param* prm : fwd.params()) f.writeTensor("/params/" + prm->name, be.toHost(prm->value));
    for (Param* prm : g.params()) f.writeTensor("/params/" + prm->name, be.toHost(prm->value));
    writeState(f, be, "/optim/", fwd.params(), engine.forwardOptimizer(), "optimizer_steps");
    for (int i = 1; i < g.numBlocks(); ++i)
      if (Optimizer* o = engine.feedbackOptimizer(i))
        writeState(f, be, "/feedback_optim/", o->params(), *o, "feedback_optimizer_steps_G" + std::to_string(i));
    f.flush();
  }
  fsyncPath(tmp);
  fs::rename(tmp, path);
  fsyncPath(dir);
}

void readDtpShard(const std::string& dir, const DtpShardMeta& expect, Model& fwd, FeedbackNet& g, DtpEngine& engine,
                  TrainProgress& p) {
  if (!fs::exists(dir + "/COMMITTED"))
    throw InputError(dir + ": checkpoint is not committed (incomplete write); not resuming from it");
  const std::string path = shardPath(dir, expect.rank);
  if (!fs::exists(path)) throw InputError(path + ": no checkpoint shard for rank " + std::to_string(expect.rank));
  h5::File f(path, h5::Access::kRead);
  if (!f.hasAttr("/", "dtp_format"))
    throw InputError(path + ": not a DTP checkpoint (train.algo = " + f.attrString("/", "algo") + ")");
  if (f.attrInt("/", "dtp_format") != kDtpFormat)
    throw InputError(path + ": DTP checkpoint format " + std::to_string(f.attrInt("/", "dtp_format")) + ", expected " +
                     std::to_string(kDtpFormat));
  TrainProgress read;
  const ShardMeta hdr = readShardHeader(f, read);
  const std::string &algo = hdr.algo, &model = hdr.model;
  if (algo != expect.algo)
    throw InputError(path + ": checkpoint is of train.algo = " + algo + ", config says " + expect.algo);
  if (model != expect.model)
    throw InputError(path + ": checkpoint is of model '" + model + "', config says '" + expect.model + "'");
  const int world = hdr.world;
  if (world != expect.world)
    throw InputError(path + ": checkpoint was written by " + std::to_string(world) + " ranks, this job has " +
                     std::to_string(expect.world));
  const auto owner = f.readInt64("/dtp/owner");
  if (std::vector<int>(owner.begin(), owner.end()) != expect.owner)
    throw InputError(path + ": checkpoint assigns feedback blocks to ranks differently (dtp.assign changed?)");
  Backend& be = fwd.backend();
  for (Param* prm : fwd.params()) readInto(f, be, "/params/" + prm->name, prm->value);
  for (Param* prm : g.params()) readInto(f, be, "/params/" + prm->name, prm->value);
  readState(f, be, "/optim/", fwd.params(), engine.forwardOptimizer(), "optimizer_steps");
  for (int i = 1; i < g.numBlocks(); ++i)
    if (Optimizer* o = engine.feedbackOptimizer(i))
      readState(f, be, "/feedback_optim/", o->params(), *o, "feedback_optimizer_steps_G" + std::to_string(i));
  p = read;
}

}  // namespace sw::dtp
