// Config parsing on Boost.Program_options: every key is declared once below (name, default, help,
// setter). INI files map "[optim]\nlr = 0.1" to the key "optim.lr"; command-line overrides are
// "optim.lr=0.1" or "--optim.lr=0.1". Values are parsed and validated here so that every error
// names the key, the value and what was expected.
#include <boost/program_options.hpp>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "config/Keys.h"
#include "config/TrainConfig.h"
#include "core/Error.h"
#include "core/Strings.h"

namespace po = boost::program_options;

namespace sw {
namespace {

void addTrainKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [train]
      // The algorithm names are the registry's (algo/Registry.h), which checks this key.
      {"train.algo", "bp", "training algorithm (the list below)",
       [](TrainConfig& c, const std::string& v) {
         if (v.empty()) bad("train.algo", v, "an algorithm name");
         c.train.algo = v;
       }},
      {"train.epochs", "1", "epochs to train",
       [](TrainConfig& c, const std::string& v) { c.train.epochs = int(toInt("train.epochs", v, 1, 100000)); }},
      {"train.batch_size", "128", "samples per optimizer step over all replicas (split evenly over replicas and micro-batches)",
       [](TrainConfig& c, const std::string& v) { c.train.batchSize = toInt("train.batch_size", v, 1, 1 << 20); }},
      {"train.eval_batch_size", "1000", "batch size for evaluation",
       [](TrainConfig& c, const std::string& v) { c.train.evalBatchSize = toInt("train.eval_batch_size", v, 1, 1 << 20); }},
      {"train.accum_steps", "1", "mini-batches accumulated per optimizer step",
       [](TrainConfig& c, const std::string& v) { c.train.accumSteps = int(toInt("train.accum_steps", v, 1, 4096)); }},
      {"train.accum_average", "true", "divide accumulated gradients by accum_steps",
       [](TrainConfig& c, const std::string& v) { c.train.accumAverage = toBool("train.accum_average", v); }},
      {"train.seed", "0", "seed of initialisation, shuffling, augmentation and dropout",
       [](TrainConfig& c, const std::string& v) { c.train.seed = uint64_t(toInt("train.seed", v, 0, INT64_MAX)); }},
      {"train.max_steps", "0", "stop after this many optimizer steps (0 = no limit)",
       [](TrainConfig& c, const std::string& v) { c.train.maxSteps = toInt("train.max_steps", v, 0, INT64_MAX); }},
      {"train.log_every_seconds", "10", "progress line period when not on a terminal",
       [](TrainConfig& c, const std::string& v) { c.train.logEverySeconds = toDouble("train.log_every_seconds", v, 0.1, 1e9); }},
  });
}

void addModelKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [model]
      {"model.name", "lenet", "mlp|mlp_bn|lenet|simple_vgg|allcnn|resnet18|resnet34|wrn|wrn16_4|wrn28_10",
       [](TrainConfig& c, const std::string& v) { c.model.name = oneOf("model.name", v, modelNames()); }},
      {"model.hidden", "1024,1024", "mlp hidden layer sizes",
       [](TrainConfig& c, const std::string& v) { c.model.hidden = toIntList("model.hidden", v, 1); }},
      {"model.dropout", "-1", "dropout probability (-1 = the model's default)",
       [](TrainConfig& c, const std::string& v) { c.model.dropout = float(toDouble("model.dropout", v, -1, 0.99)); }},
      {"model.input_dropout", "-1", "allcnn input dropout (-1 = default 0.2)",
       [](TrainConfig& c, const std::string& v) { c.model.inputDropout = float(toDouble("model.input_dropout", v, -1, 0.99)); }},
      {"model.batchnorm", "true", "batch norm in lenet",
       [](TrainConfig& c, const std::string& v) { c.model.batchnorm = toBool("model.batchnorm", v); }},
      {"model.width", "0", "base channel width (0 = the model's default; wrn: widen factor k, default 10)",
       [](TrainConfig& c, const std::string& v) { c.model.width = toInt("model.width", v, 0, 65536); }},
      {"model.depth", "0", "wrn: depth 6N + 4 (0 = 28); simple_vgg: conv blocks 1..5 (0 = 5)",
       [](TrainConfig& c, const std::string& v) { c.model.depth = toInt("model.depth", v, 0, 10000); }},
  });
}

void addDataKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [data]
      {"data.name", "fashion_mnist", "fashion_mnist|mnist|cifar10|hdf5|synthetic",
       [](TrainConfig& c, const std::string& v) { c.data.name = oneOf("data.name", v, {"fashion_mnist", "mnist", "cifar10", "hdf5", "synthetic"}); }},
      {"data.dir", "", "directory of the data set's standard files",
       [](TrainConfig& c, const std::string& v) { c.data.dir = v; }},
      {"data.train_file", "", "hdf5: training file", [](TrainConfig& c, const std::string& v) { c.data.trainFile = v; }},
      {"data.test_file", "", "hdf5: test file", [](TrainConfig& c, const std::string& v) { c.data.testFile = v; }},
      {"data.images_key", "images", "hdf5: images dataset", [](TrainConfig& c, const std::string& v) { c.data.imagesKey = v; }},
      {"data.labels_key", "labels", "hdf5: labels dataset", [](TrainConfig& c, const std::string& v) { c.data.labelsKey = v; }},
      {"data.limit_train", "0", "use only the first N training samples (0 = all)",
       [](TrainConfig& c, const std::string& v) { c.data.limitTrain = toInt("data.limit_train", v, 0, INT64_MAX); }},
      {"data.limit_test", "0", "use only the first N test samples (0 = all)",
       [](TrainConfig& c, const std::string& v) { c.data.limitTest = toInt("data.limit_test", v, 0, INT64_MAX); }},
      {"data.synthetic_train", "1024", "synthetic: training samples",
       [](TrainConfig& c, const std::string& v) { c.data.syntheticTrain = toInt("data.synthetic_train", v, 1, INT64_MAX); }},
      {"data.synthetic_test", "256", "synthetic: test samples",
       [](TrainConfig& c, const std::string& v) { c.data.syntheticTest = toInt("data.synthetic_test", v, 1, INT64_MAX); }},
      {"data.synthetic_shape", "1,28,28", "synthetic: sample shape C,H,W",
       [](TrainConfig& c, const std::string& v) {
         c.data.syntheticShape = toIntList("data.synthetic_shape", v, 1);
         if (c.data.syntheticShape.size() != 3) bad("data.synthetic_shape", v, "three sizes C,H,W");
       }},
      {"data.synthetic_classes", "10", "synthetic: classes",
       [](TrainConfig& c, const std::string& v) { c.data.syntheticClasses = toInt("data.synthetic_classes", v, 2, 100000); }},
      {"data.pad_to", "0", "zero-pad images to this size (e.g. 28 -> 32 for simple_vgg)",
       [](TrainConfig& c, const std::string& v) { c.augment.padTo = toInt("data.pad_to", v, 0, 4096); }},
      {"data.crop_pad", "0", "random crop with this zero padding (training)",
       [](TrainConfig& c, const std::string& v) { c.augment.cropPad = toInt("data.crop_pad", v, 0, 64); }},
      {"data.crop_mode", "zero", "random crop padding: zero | edge (replicate the border, torchvision padding_mode='edge')",
       [](TrainConfig& c, const std::string& v) { c.augment.cropEdge = oneOf("data.crop_mode", v, {"zero", "edge"}) == "edge"; }},
      {"data.hflip", "false", "random horizontal flip (training)",
       [](TrainConfig& c, const std::string& v) { c.augment.hflip = toBool("data.hflip", v); }},
      {"data.mean", "", "per-channel mean for normalisation (after scaling to [0,1])",
       [](TrainConfig& c, const std::string& v) { c.augment.mean = toFloatList("data.mean", v); }},
      {"data.std", "", "per-channel std for normalisation",
       [](TrainConfig& c, const std::string& v) {
         c.augment.stddev = toFloatList("data.std", v);
         for (float s : c.augment.stddev)
           if (s <= 0) bad("data.std", v, "positive values");
       }},
  });
}

void addOptimKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [optim]
      {"optim.name", "sgd", "sgd|adam|lars",
       [](TrainConfig& c, const std::string& v) {
         try {
           c.optim.kind = parseOptimKind(v);
         } catch (const ConfigError&) {
           bad("optim.name", v, "sgd, adam or lars");
         }
       }},
      {"optim.lr", "0.05", "base learning rate",
       [](TrainConfig& c, const std::string& v) { c.lr.lr = float(toDouble("optim.lr", v, 0, 1e6)); }},
      {"optim.momentum", "0.9", "momentum (SGD, LARS)",
       [](TrainConfig& c, const std::string& v) { c.optim.momentum = float(toDouble("optim.momentum", v, 0, 1)); }},
      {"optim.dampening", "0", "momentum dampening",
       [](TrainConfig& c, const std::string& v) { c.optim.dampening = float(toDouble("optim.dampening", v, 0, 1)); }},
      {"optim.nesterov", "false", "Nesterov momentum",
       [](TrainConfig& c, const std::string& v) { c.optim.nesterov = toBool("optim.nesterov", v); }},
      {"optim.weight_decay", "0", "L2 weight decay",
       [](TrainConfig& c, const std::string& v) { c.optim.weightDecay = float(toDouble("optim.weight_decay", v, 0, 1)); }},
      {"optim.bn_bias_decay", "true", "apply weight decay to batch-norm parameters and biases",
       [](TrainConfig& c, const std::string& v) { c.optim.decayBnAndBias = toBool("optim.bn_bias_decay", v); }},
      {"optim.beta1", "0.9", "Adam beta1", [](TrainConfig& c, const std::string& v) { c.optim.beta1 = float(toDouble("optim.beta1", v, 0, 0.999999)); }},
      {"optim.beta2", "0.999", "Adam beta2", [](TrainConfig& c, const std::string& v) { c.optim.beta2 = float(toDouble("optim.beta2", v, 0, 0.99999999)); }},
      {"optim.eps", "1e-8", "Adam epsilon", [](TrainConfig& c, const std::string& v) { c.optim.eps = float(toDouble("optim.eps", v, 0, 1)); }},
      {"optim.amsgrad", "false", "Adam AMSGrad", [](TrainConfig& c, const std::string& v) { c.optim.amsgrad = toBool("optim.amsgrad", v); }},
      {"optim.lars_trust", "0.02", "LARS trust coefficient", [](TrainConfig& c, const std::string& v) { c.optim.trust = float(toDouble("optim.lars_trust", v, 0, 1e3)); }},
      {"optim.schedule", "constant", "constant|step|cosine|poly",
       [](TrainConfig& c, const std::string& v) {
         try {
           c.lr.kind = parseLrKind(v);
         } catch (const ConfigError&) {
           bad("optim.schedule", v, "constant, step, cosine or poly");
         }
       }},
      {"optim.poly_reach_zero", "true", "poly schedule: true = lr0 (1 - (e+1)/T)^2, 0 in the last epoch (PETRA); false = lr0 (1 - e/T)^2 from lr0 on (SpecTrain)",
       [](TrainConfig& c, const std::string& v) { c.lr.polyReachZero = toBool("optim.poly_reach_zero", v); }},
      {"optim.poly_per_iteration", "false", "poly schedule: lr0 (1 - t/T)^2 with t = epoch + iteration/N, annealed every iteration to ~0 at the last step (overrides poly_reach_zero)",
       [](TrainConfig& c, const std::string& v) { c.lr.polyPerIteration = toBool("optim.poly_per_iteration", v); }},
      {"optim.milestones", "", "step schedule: epochs at which lr is multiplied by factor",
       [](TrainConfig& c, const std::string& v) {
         c.lr.milestones.clear();
         for (int64_t m : toIntList("optim.milestones", v, 0)) c.lr.milestones.push_back(int(m));
       }},
      {"optim.factor", "0.1", "step schedule factor", [](TrainConfig& c, const std::string& v) { c.lr.factor = float(toDouble("optim.factor", v, 0, 1)); }},
      {"optim.warmup_epochs", "0", "linear warm-up epochs", [](TrainConfig& c, const std::string& v) { c.lr.warmupEpochs = int(toInt("optim.warmup_epochs", v, 0, 100000)); }},
      {"optim.goyal", "false", "Goyal scaling lr * accum * batch / 256", [](TrainConfig& c, const std::string& v) { c.lr.goyal = toBool("optim.goyal", v); }},
      {"optim.cosine_t_max", "0", "cosine schedule: PyTorch CosineAnnealingLR T_max in epochs (0 = over train.epochs)",
       [](TrainConfig& c, const std::string& v) { c.lr.tMax = int(toInt("optim.cosine_t_max", v, 0, 1000000)); }},
      {"optim.eta_min", "0", "cosine schedule with cosine_t_max: the minimum learning rate",
       [](TrainConfig& c, const std::string& v) { c.lr.etaMin = float(toDouble("optim.eta_min", v, 0, 1e6)); }},
  });
}

void addRuntimeKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [runtime]
      {"runtime.threads", "0", "CPU threads (0 = all cores)", [](TrainConfig& c, const std::string& v) { c.runtime.threads = int(toInt("runtime.threads", v, 0, 1024)); }},
      {"runtime.cpu_conv", "auto", "CPU convolution: auto (oneDNN direct kernels where the build has them) | im2col (batched im2col + GEMM)",
       [](TrainConfig& c, const std::string& v) { c.runtime.cpuConv = oneOf("runtime.cpu_conv", v, {"auto", "im2col"}); }},
      {"runtime.nccl_p2p", "false", "GPU runs: point-to-point (pipeline) messages over NCCL too; default: collectives on NCCL, point-to-point staged through MPI (tag-matched, any order)",
       [](TrainConfig& c, const std::string& v) {
         c.runtime.ncclP2p = toBool("runtime.nccl_p2p", v);
         // NCCL has no tags and runs a communicator's operations in issue order; the executor posts
         // receives ahead of the sends a peer waits for (MPI matches them by tag in any order), so
         // pipeline messages over NCCL could deadlock. Refused until the schedules issue them grouped.
         if (c.runtime.ncclP2p)
           throw ConfigError("runtime.nccl_p2p = true is not supported yet: NCCL point-to-point has no tags and "
                             "runs in issue order, and the pipelines post receives early (a deadlock risk); "
                             "pipeline messages are staged through MPI, collectives use NCCL");
       }},
      {"runtime.device", "cpu", "cpu|cuda|auto (cpu-staged: tests only, the CPU backend run as if it were a device)",
       [](TrainConfig& c, const std::string& v) { c.runtime.device = oneOf("runtime.device", v, {"cpu", "cuda", "auto", "cpu-staged"}); }},
      {"runtime.comm_timeout", "300", "seconds a rank waits for a peer before declaring it dead (exit 3)",
       [](TrainConfig& c, const std::string& v) { c.runtime.commTimeout = toDouble("runtime.comm_timeout", v, 0.1, 1e7); }},
      {"runtime.fault", "", "fault injection for tests: KIND@RANK:STEP with KIND throw|hang|kill (empty = off)",
       [](TrainConfig& c, const std::string& v) { c.runtime.fault = parseFault("runtime.fault", v); }},
      {"runtime.jitter_us", "0", "testing: sleep a random 0..N microseconds before each instruction (results must not depend on timing)",
       [](TrainConfig& c, const std::string& v) { c.runtime.jitterUs = int(toInt("runtime.jitter_us", v, 0, 10000000)); }},
  });
}

void addPipeKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [pipe]
      {"pipe.stages", "0", "pipeline stages (0 = all ranks for pipeline algorithms, 1 for bp/dp); ranks = stages x replicas",
       [](TrainConfig& c, const std::string& v) { c.pipe.stages = int(toInt("pipe.stages", v, 0, 4096)); }},
      {"pipe.microbatches", "1", "micro-batches each replica's batch is split into",
       [](TrainConfig& c, const std::string& v) { c.pipe.microbatches = int(toInt("pipe.microbatches", v, 1, 65536)); }},
      {"pipe.partition", "", "first block of stages 1..S-1, e.g. 2,5,7 (empty = balanced by pipe.balance)",
       [](TrainConfig& c, const std::string& v) { c.pipe.partition = v; }},
      {"pipe.balance", "time", "stage balancing cost when pipe.partition is empty: time (measured) | macs",
       [](TrainConfig& c, const std::string& v) { c.pipe.balance = oneOf("pipe.balance", v, {"time", "macs"}); }},
  });
}

std::vector<Key> makeKeys() {
  std::vector<Key> k;
  addTrainKeys(k);
  addModelKeys(k);
  addDataKeys(k);
  addOptimKeys(k);
  addRuntimeKeys(k);
  addPipeKeys(k);
  // Each algorithm's section, from its folder (src/algo/<family>/Options.cpp).
  addPipeDreamKeys(k);
  addPetraKeys(k);
  addInterlockingKeys(k);
  addBackpropKeys(k);
  addDtpKeys(k);
  addParleKeys(k);
  k.insert(k.end(), {
      // [checkpoint]
      {"checkpoint.every_epochs", "1", "checkpoint every N epochs (0 = only at the end)",
       [](TrainConfig& c, const std::string& v) { c.checkpoint.everyEpochs = int(toInt("checkpoint.every_epochs", v, 0, 100000)); }},
      {"checkpoint.every_steps", "0", "checkpoint every N optimizer steps (0 = off)",
       [](TrainConfig& c, const std::string& v) { c.checkpoint.everySteps = toInt("checkpoint.every_steps", v, 0, INT64_MAX); }},
      {"checkpoint.keep", "2", "committed checkpoints to keep (the newest; a damaged one is renamed damaged_step_N, never deleted)",
       [](TrainConfig& c, const std::string& v) { c.checkpoint.keep = int(toInt("checkpoint.keep", v, 1, 1000)); }},
      {"checkpoint.fallback", "true", "--resume: when the latest checkpoint fails verification, fall back to the newest that verifies (false: exit 2)",
       [](TrainConfig& c, const std::string& v) { c.checkpoint.fallback = toBool("checkpoint.fallback", v); }},
  });
  return k;
}

const std::vector<Key>& keys() {
  static const std::vector<Key> k = makeKeys();
  return k;
}

po::options_description describe() {
  po::options_description d("stagewise config");
  for (const Key& k : keys()) d.add_options()(k.name.c_str(), po::value<std::string>(), k.help.c_str());
  return d;
}

const Key* findKey(const std::string& name) {
  for (const Key& k : keys())
    if (k.name == name) return &k;
  return nullptr;
}

TrainConfig resolve(std::map<std::string, std::string> values) {
  TrainConfig c;
  for (const Key& k : keys()) {
    auto it = values.find(k.name);
    std::string v = trim(it == values.end() ? k.def : it->second);
    k.set(c, v);
    c.resolved.emplace_back(k.name, v);
  }
  // Cross-key checks.
  if (!c.augment.mean.empty() && c.augment.mean.size() != c.augment.stddev.size())
    throw ConfigError("data.mean and data.std must have the same number of channels");
  for (int m : c.lr.milestones)
    if (m > c.train.epochs)
      throw ConfigError("optim.milestones: milestone " + std::to_string(m) +
                        " is after the last epoch (train.epochs = " + std::to_string(c.train.epochs) + ")");
  resolveDtpOptions(c);
  if (c.data.name == "hdf5" && (c.data.trainFile.empty() || c.data.testFile.empty()))
    throw ConfigError("data.name = hdf5 needs data.train_file and data.test_file");
  resolveParleOptions(c, values);
  c.data.seed = c.train.seed;
  c.lr.epochs = c.train.epochs;
  c.lr.accumSteps = c.train.accumSteps;
  c.lr.batchSize = int(c.train.batchSize);
  return c;
}

void applyOverrides(std::map<std::string, std::string>& values, const std::vector<std::string>& overrides) {
  for (std::string o : overrides) {
    if (o.rfind("--", 0) == 0) o = o.substr(2);
    const size_t eq = o.find('=');
    if (eq == std::string::npos)
      throw ConfigError("override '" + o + "': expected section.key=value");
    const std::string key = trim(o.substr(0, eq));
    if (!findKey(key))
      throw ConfigError("unknown config key '" + key + "' on the command line (see 'stagewise train --help')");
    const std::string v = o.substr(eq + 1);
    // The resolved config is written as INI text (DIR/config.ini, read by the other ranks and by
    // --resume), where '#' starts a comment and a line break ends the value: such a value would
    // come back as another one (or as other keys), so it is refused here.
    if (v.find_first_of(std::string("#\n\r\0", 4)) != std::string::npos)
      throw ConfigError("override '" + key + "': the value may not contain '#', a line break or a NUL byte "
                        "(config.ini cannot hold them), got '" + v + "'");
    values[key] = v;
  }
}

std::map<std::string, std::string> parseIni(std::istream& in, const std::string& origin) {
  std::map<std::string, std::string> values;
  try {
    po::variables_map vm;
    po::store(po::parse_config_file(in, describe(), /*allow_unregistered=*/false), vm);
    for (const auto& [k, v] : vm) values[k] = v.as<std::string>();
  } catch (const po::unknown_option& e) {
    throw ConfigError(origin + ": unknown config key '" + e.get_option_name() + "'");
  } catch (const po::multiple_occurrences& e) {
    throw ConfigError(origin + ": key '" + e.get_option_name() + "' given more than once");
  } catch (const po::invalid_config_file_syntax& e) {
    // Not e.what(): Boost 1.74 fills the line into its message template by replacing
    // "%invalid_line%" until none is left, which never ends for a line that contains that token.
    throw ConfigError(origin + ": invalid line '" + e.tokens() + "' (expected 'key = value', '[section]' or a # comment)");
  } catch (const po::error_with_option_name& e) {
    // The same substitution loop runs over the option name and value: only the name is used here.
    throw ConfigError(origin + ": invalid config entry for key '" + e.get_option_name() + "'");
  } catch (const po::error& e) {
    throw ConfigError(origin + ": " + e.what());
  }
  return values;
}

}  // namespace

std::string iniText(const TrainConfig& cfg) {
  std::ostringstream os;
  std::string section;
  for (const auto& [k, v] : cfg.resolved) {
    const std::string s = k.substr(0, k.find('.'));
    if (s != section) {
      os << (section.empty() ? "" : "\n") << "[" << s << "]\n";
      section = s;
    }
    os << k.substr(k.find('.') + 1) << " = " << v << "\n";
  }
  return os.str();
}

TrainConfig parseConfig(const std::string& iniPath, const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> values;
  if (!iniPath.empty()) {
    std::ifstream f(iniPath);
    if (!f) throw ConfigError(iniPath + ": cannot open config file");
    values = parseIni(f, iniPath);
  }
  applyOverrides(values, overrides);
  return resolve(values);
}

TrainConfig parseConfigText(const std::string& text, const std::string& origin,
                            const std::vector<std::string>& overrides) {
  std::istringstream in(text);
  auto values = parseIni(in, origin);
  applyOverrides(values, overrides);
  return resolve(values);
}

std::string configHelp() {
  std::ostringstream os;
  for (const Key& k : keys()) {
    os << "  " << k.name;
    for (size_t i = k.name.size(); i < 26; ++i) os << ' ';
    os << (k.def.empty() ? "''" : k.def);
    for (size_t i = k.def.size(); i < 12; ++i) os << ' ';
    if (k.def.size() >= 12) os << "  ";  // long defaults (lists) stay apart from the help text
    os << k.help << "\n";
  }
  return os.str();
}

}  // namespace sw
