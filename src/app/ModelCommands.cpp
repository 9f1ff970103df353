#include "app/ModelCommands.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <optional>
#include <regex>

#include <nlohmann/json.hpp>

#include "config/TrainConfig.h"
#include "coord/Coordinator.h"
#include "core/Error.h"
#include "data/Dataset.h"
#include "data/Loader.h"
#include "io/Checkpoint.h"
#include "io/H5.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"
#include "train/Trainer.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

const char* kEvalUsage =
    "usage: stagewise eval --run DIR [--checkpoint STEP] [--split test|train] [section.key=value ...]\n"
    "Loss, top-1 and top-5 of a run's checkpoint (the newest committed one, or STEP) on a split, on\n"
    "any rank count the run's algorithm takes (the checkpoint is resharded). Overrides: data.*,\n"
    "runtime.* and train.eval_batch_size (e.g. another data.root).\n";

const char* kExportUsage =
    "usage: stagewise export --run DIR [--checkpoint STEP] --format safetensors|h5 --out FILE\n"
    "                        [--probe FILE.h5] [--probe-samples N]\n"
    "The whole model of a run's checkpoint in one file: parameters and BatchNorm statistics under\n"
    "PyTorch's names (torchvision's for the ResNets), the model and config as metadata (a Parle\n"
    "run: its evaluated master); load it\n"
    "with tools/load_in_torch.py. --probe also writes N test inputs x and the model's eval-mode\n"
    "logits (default 8), to check another framework's forward against.\n";

struct CommonArgs {
  std::string run, out, format, split = "test", probe;
  int64_t step = -1, probeSamples = 8;
  std::vector<std::string> overrides;
  bool help = false;
};

CommonArgs parse(const std::vector<std::string>& args, const std::string& cmd) {
  CommonArgs a;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& s = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw ConfigError(cmd + ": " + s + " needs a value");
      return args[++i];
    };
    auto integer = [&](const std::string& v) {
      try {
        size_t used = 0;
        const long long n = std::stoll(v, &used);
        if (used == v.size() && n >= 0) return int64_t(n);
      } catch (const std::exception&) {
      }
      throw ConfigError(cmd + ": " + s + " expects a non-negative integer, got '" + v + "'");
    };
    if (s == "--help" || s == "-h") a.help = true;
    else if (s == "--run") a.run = value();
    else if (s == "--checkpoint") a.step = integer(value());
    else if (s == "--split" && cmd == "eval") a.split = value();
    else if (s == "--out" && cmd == "export") a.out = value();
    else if (s == "--format" && cmd == "export") a.format = value();
    else if (s == "--probe" && cmd == "export") a.probe = value();
    else if (s == "--probe-samples" && cmd == "export") a.probeSamples = integer(value());
    else if (s.find('=') != std::string::npos && s.rfind("--", 0) != 0 && cmd == "eval") a.overrides.push_back(s);
    else throw ConfigError(cmd + ": unknown argument '" + s + "' (--help lists them)");
  }
  if (a.help) return a;
  if (a.run.empty()) throw ConfigError(cmd + ": --run DIR is required");
  if (cmd == "eval" && a.split != "test" && a.split != "train")
    throw ConfigError("eval: --split expects test or train, got '" + a.split + "'");
  if (cmd == "export") {
    if (a.format != "safetensors" && a.format != "h5")
      throw ConfigError("export: --format expects safetensors or h5, got '" + a.format + "'");
    if (a.out.empty()) throw ConfigError("export: --out FILE is required");
    if (a.probeSamples < 1) throw ConfigError("export: --probe-samples must be at least 1");
  }
  for (const std::string& o : a.overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (key.rfind("data.", 0) != 0 && key.rfind("runtime.", 0) != 0 && key != "train.eval_batch_size")
      throw ConfigError("eval: override " + key + ": only data.*, runtime.* and train.eval_batch_size change an "
                        "evaluation (the model and algorithm are the run's)");
  }
  return a;
}

// The committed step directory of `run` holding step `step` (-1: the newest).
std::string stepDirOf(const std::string& run, int64_t step) {
  if (fs::exists(fs::path(run) / "COMMITTED") && (step < 0 || readManifest(run).step == step)) return run;
  const std::vector<std::string> all = CheckpointStore(run).committed();
  if (all.empty()) throw InputError(run + ": no committed checkpoint (a run directory of stagewise train?)");
  if (step < 0) return all.front();
  std::string steps;
  for (const std::string& d : all) {
    const int64_t s = readManifest(d).step;
    if (s == step) return d;
    steps += (steps.empty() ? "" : ", ") + std::to_string(s);
  }
  throw InputError(run + ": no committed checkpoint of step " + std::to_string(step) + " (committed: " + steps + ")");
}

ShardMeta headerOf(const std::string& stepDir, TrainProgress& p) {
  const std::string path = rankFilePath(stepDir, "", 0);
  if (!fs::exists(path)) throw InputError(path + ": missing (rank 0's shard holds the run's config)");
  h5::File f(path, h5::Access::kRead);
  return readShardHeader(f, p);
}

std::string pct(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << 100 * v << "%";
  return os.str();
}

}  // namespace

std::string torchName(const std::string& model, const std::string& name) {
  if (model != "resnet18" && model != "resnet34" && model != "resnet50") return name;
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex(R"(^stem\.conv\.)"), "conv1."},
      {std::regex(R"(^stem\.bn\.)"), "bn1."},
      {std::regex(R"(^head\.fc\.)"), "fc."},
      {std::regex(R"(^(layer\d+\.\d+)\.block\.shortcut\.conv\.)"), "$1.downsample.0."},
      {std::regex(R"(^(layer\d+\.\d+)\.block\.shortcut\.bn\.)"), "$1.downsample.1."},
      {std::regex(R"(^(layer\d+\.\d+)\.block\.)"), "$1."},
  };
  for (const auto& [re, to] : rules)
    if (std::regex_search(name, re)) return std::regex_replace(name, re, to, std::regex_constants::format_first_only);
  return name;
}

int evalCommand(const std::vector<std::string>& args, Communicator& world, int localRanks, int localRank,
                std::ostream& out) {
  CommonArgs a;
  std::string text, stepDir;
  TrainProgress p;
  agree(world, [&] {
    a = parse(args, "eval");
    if (a.help || world.rank() != 0) return;
    stepDir = stepDirOf(a.run, a.step);
    const ShardMeta meta = headerOf(stepDir, p);
    text = iniText(parseConfigText(meta.configText, stepDir + " (the run's config)", a.overrides));
  });
  if (a.help) {
    if (world.rank() == 0) out << kEvalUsage;
    return 0;
  }
  world.broadcastString(text, 0);
  world.broadcastString(stepDir, 0);
  TrainConfig cfg = parseConfigText(text, "config from rank 0", {});
  // A one-rank backprop run is evaluated on several ranks as data parallel: the same model, each
  // rank a share of the batches (its shards are those of a 1-stage job either way).
  const std::string writtenBy = cfg.train.algo;
  if (cfg.train.algo == "bp" && world.size() > 1) cfg.train.algo = "dp";
  cfg.runtime.localRanks = localRanks;
  cfg.runtime.localRank = localRank;
  world.setOptions({.timeoutSeconds = cfg.runtime.commTimeout});
  const int64_t step = readManifest(stepDir).step;
  Trainer t(cfg, "", a.run, &world);
  t.evaluateCheckpoint(step, writtenBy);
  t.prepare();
  const EvalResult r = a.split == "test" ? t.evaluateTest(t.progress().epoch) : t.evaluate(t.data().train);
  if (world.rank() == 0)
    out << "eval " << stepDir << " (step " << step << ", " << cfg.model.name << ", " << cfg.train.algo << ", "
        << world.size() << " rank(s)): " << a.split << " split, " << r.samples << " samples: loss " << std::fixed
        << std::setprecision(4) << r.loss << ", top-1 " << pct(r.acc) << ", top-5 " << pct(r.top5) << "\n"
        << std::flush;
  return 0;
}

namespace {

void writeSafetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& meta) {
  nlohmann::json h;
  h["__metadata__"] = meta;
  size_t offset = 0;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", "F32"}, {"shape", t.shape().dims()}, {"data_offsets", {offset, offset + t.bytes()}}};
    offset += t.bytes();
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::ofstream o(path, std::ios::binary | std::ios::trunc);
  if (!o) throw IoError(path + ": cannot write");
  const uint64_t n = header.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));  // little endian
  o.write(reinterpret_cast<const char*>(len), 8);
  o.write(header.data(), std::streamsize(header.size()));
  for (const auto& [name, t] : tensors) o.write(reinterpret_cast<const char*>(t.data()), std::streamsize(t.bytes()));
  o.flush();
  if (!o) throw IoError(path + ": write failed (disk full?)");
}

}  // namespace

int exportCommand(const std::vector<std::string>& args, std::ostream& out) {
  const CommonArgs a = parse(args, "export");
  if (a.help) {
    out << kExportUsage;
    return 0;
  }
  const std::string stepDir = stepDirOf(a.run, a.step);
  CheckpointStore::verify(stepDir, -1);  // nothing leaves a checkpoint that does not verify
  TrainProgress p;
  const ShardMeta meta = headerOf(stepDir, p);
  TrainConfig cfg = parseConfigText(meta.configText, stepDir + " (the run's config)", {});
  cfg.runtime.device = "cpu";
  auto be = makeBackend(cfg.runtime);
  std::optional<DataSplits> data;
  Shape sample(meta.sample);
  int64_t classes = meta.classes;
  if (meta.sample.empty() || !a.probe.empty()) {  // older checkpoints do not record the input shape
    data = loadData(cfg.data);
    if (meta.sample.empty()) {
      BatchLoader l(data->test, 1, 0, Shard{}, cfg.augment, Shuffle::kNo, DropLast::kNo, Augment::kNo);
      sample = l.sampleShape();
      classes = data->train.classes;
    }
  }
  auto model = buildModel(*be, cfg.model, sample, classes, cfg.train.seed);
  const size_t nb = model->numBlocks();
  Optimizer opt(*be, model->params(), cfg.optim);
  const ResumeSource src = resumeSource(stepDir, 0, 1, 1, 1, 0, {{0, nb}}, nb);
  Rng::State rs;
  CheckpointStore store(a.run);
  if (src.sameShape) store.readShard(stepDir, 0, *model, {0, nb}, opt, p, rs);
  else store.readResharded(src, *model, {0, nb}, opt, p, rs, nullptr, nullptr);
  // Parle's deliverable is its master (the coupled replicas' evaluated average), kept in its own
  // files beside the shards; a checkpoint from before the first evaluation has none yet.
  std::string weights = "live weights of replica 0";
  if (meta.algo == "parle") {
    SourceFiles parle(src, "parle_");
    const bool any = parle.find("/master/params/" + model->params().front()->name) != nullptr;
    if (any) {
      Backend& b = *be;
      auto take = [&](const std::string& obj, Tensor& dst) {
        h5::File* f = parle.find(obj);
        if (!f) throw InputError(stepDir + ": Parle's master lacks '" + obj + "'");
        const Tensor h = f->readTensor(obj);
        if (h.shape() != dst.shape())
          throw InputError(f->path() + ": '" + obj + "' has shape " + h.shape().str() + ", the model expects " +
                           dst.shape().str());
        b.copy(h, dst);
      };
      for (Param* prm : model->params()) take("/master/params/" + prm->name, prm->value);
      for (Buffer* x : model->buffers()) take("/master/buffers/" + x->name, x->value);
      weights = "Parle's master";
    }
  }

  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> seen;
  auto add = [&](const std::string& ours, const Tensor& v) {
    const std::string name = torchName(cfg.model.name, ours);
    if (auto [it, fresh] = seen.emplace(name, ours); !fresh)
      throw Error("export: " + ours + " and " + it->second + " both map to " + name);
    tensors.emplace_back(name, be->toHost(v));
  };
  for (Param* prm : model->params()) add(prm->name, prm->value);
  for (Buffer* b : model->buffers()) add(b->name, b->value);
  std::string shape;
  for (int64_t d : sample.dims()) shape += (shape.empty() ? "" : ",") + std::to_string(d);
  const std::map<std::string, std::string> md = {
      {"format", "stagewise-export/1"}, {"model", cfg.model.name},     {"config", meta.configText},
      {"sample_shape", shape},          {"classes", std::to_string(classes)}, {"step", std::to_string(p.step)},
      {"algo", meta.algo}};
  const std::string tmp = a.out + ".tmp";
  try {
    if (a.format == "safetensors") {
      writeSafetensors(tmp, tensors, md);
    } else {
      h5::File f(tmp, h5::Access::kCreate);
      for (const auto& [name, t] : tensors) f.writeTensor("/tensors/" + name, t);
      for (const auto& [k, v] : md) f.setAttr("/", k, v);
      f.flush();
    }
    fsyncPath(tmp);
    fs::rename(tmp, a.out);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);  // nothing half-written is left
    throw;
  }
  int64_t numel = 0;
  for (const auto& [n, t] : tensors) numel += t.numel();
  out << "export " << a.out << ": " << cfg.model.name << " from " << stepDir << " (step " << p.step << "), "
      << tensors.size() << " tensors, " << numel << " values, " << a.format << " (" << weights << ")\n";

  if (!a.probe.empty()) {  // the first test samples, as evaluation preprocesses them, and our logits
    BatchLoader l(data->test, std::min<int64_t>(a.probeSamples, data->test.size()), 0, Shard{}, cfg.augment,
                  Shuffle::kNo, DropLast::kNo, Augment::kNo);
    l.seek(0, 0);
    Batch b;
    l.next(b);
    Ctx ctx;
    const Tensor logits = be->toHost(model->forward(be->fromHost(b.x), ctx, Mode::kEval));
    const std::string ptmp = a.probe + ".tmp";
    {
      h5::File f(ptmp, h5::Access::kCreate);
      f.writeTensor("/x", b.x);
      f.writeTensor("/logits", logits);
      std::vector<int64_t> labels(b.labels.data<int32_t>(), b.labels.data<int32_t>() + b.size());
      f.writeInt64("/labels", labels);
      f.flush();
    }
    fs::rename(ptmp, a.probe);
    out << "probe " << a.probe << ": " << b.size() << " test samples and their logits\n";
  }
  return 0;
}

}  // namespace sw
