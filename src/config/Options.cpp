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

#include "config/TrainConfig.h"
#include "core/Error.h"
#include "core/Strings.h"

namespace po = boost::program_options;

namespace sw {
namespace {

[[noreturn]] void bad(const std::string& key, const std::string& v, const std::string& expected) {
  throw ConfigError(key + ": expected " + expected + ", got '" + v + "'");
}

int64_t toInt(const std::string& k, const std::string& v, int64_t lo, int64_t hi) {
  const std::optional<int64_t> p = parseInt(v);
  if (!p) bad(k, v, "an integer");
  const int64_t x = *p;
  if (x < lo || x > hi)
    bad(k, v, "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return x;
}

double toDouble(const std::string& k, const std::string& v, double lo, double hi) {
  const std::optional<double> p = parseNumber(v);
  if (!p) bad(k, v, "a finite number");
  const double x = *p;
  if (x < lo || x > hi) {
    std::ostringstream os;
    os << "a number in [" << lo << ", " << hi << "]";
    bad(k, v, os.str());
  }
  return x;
}

bool toBool(const std::string& k, const std::string& v) {
  if (v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  bad(k, v, "true or false");
}

std::vector<std::string> splitList(const std::string& v) {
  std::vector<std::string> out;
  for (std::string& item : splitTrimmed(v, ','))
    if (!item.empty()) out.push_back(std::move(item));
  return out;
}

std::vector<int64_t> toIntList(const std::string& k, const std::string& v, int64_t lo) {
  std::vector<int64_t> out;
  for (const auto& s : splitList(v)) out.push_back(toInt(k, s, lo, INT64_MAX));
  return out;
}

std::vector<float> toFloatList(const std::string& k, const std::string& v) {
  std::vector<float> out;
  for (const auto& s : splitList(v)) out.push_back(static_cast<float>(toDouble(k, s, -1e30, 1e30)));
  return out;
}

std::string oneOf(const std::string& k, const std::string& v, const std::vector<std::string>& ok) {
  for (const auto& o : ok)
    if (o == v) return v;
  std::string all;
  for (const auto& o : ok) all += (all.empty() ? "" : ", ") + o;
  bad(k, v, "one of: " + all);
}

FaultSpec parseFault(const std::string& k, const std::string& v) {
  FaultSpec f;
  if (v.empty()) return f;
  const size_t at = v.find('@'), colon = v.find(':');
  if (at == std::string::npos || colon == std::string::npos || colon < at)
    bad(k, v, "KIND@RANK:STEP, e.g. throw@1:3");
  f.kind = oneOf(k, v.substr(0, at), {"throw", "hang", "kill"});
  f.rank = int(toInt(k, v.substr(at + 1, colon - at - 1), 0, 1 << 20));
  f.step = toInt(k, v.substr(colon + 1), 0, INT64_MAX);
  return f;
}

struct Key {
  std::string name, def, help;
  std::function<void(TrainConfig&, const std::string&)> set;
};

const std::vector<Key>& keys() {
  static const std::vector<Key> k = {
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
      // [runtime]
      {"runtime.threads", "0", "CPU threads (0 = all cores)", [](TrainConfig& c, const std::string& v) { c.runtime.threads = int(toInt("runtime.threads", v, 0, 1024)); }},
      {"runtime.cpu_conv", "auto", "CPU convolution: auto (oneDNN direct kernels where the build has them) | im2col (batched im2col + GEMM)",
       [](TrainConfig& c, const std::string& v) { c.runtime.cpuConv = oneOf("runtime.cpu_conv", v, {"auto", "im2col"}); }},
      {"runtime.nccl_p2p", "false", "GPU runs: point-to-point (pipeline) messages over NCCL too; default: collectives on NCCL, point-to-point staged through MPI (tag-matched, any order)",
       [](TrainConfig& c, const std::string& v) { c.runtime.ncclP2p = toBool("runtime.nccl_p2p", v); }},
      {"runtime.device", "cpu", "cpu|cuda|auto (cpu-staged: tests only, the CPU backend run as if it were a device)",
       [](TrainConfig& c, const std::string& v) { c.runtime.device = oneOf("runtime.device", v, {"cpu", "cuda", "auto", "cpu-staged"}); }},
      // [checkpoint]
      {"runtime.comm_timeout", "300", "seconds a rank waits for a peer before declaring it dead (exit 3)",
       [](TrainConfig& c, const std::string& v) { c.runtime.commTimeout = toDouble("runtime.comm_timeout", v, 0.1, 1e7); }},
      {"runtime.fault", "", "fault injection for tests: KIND@RANK:STEP with KIND throw|hang|kill (empty = off)",
       [](TrainConfig& c, const std::string& v) { c.runtime.fault = parseFault("runtime.fault", v); }},
      {"runtime.jitter_us", "0", "testing: sleep a random 0..N microseconds before each instruction (results must not depend on timing)",
       [](TrainConfig& c, const std::string& v) { c.runtime.jitterUs = int(toInt("runtime.jitter_us", v, 0, 10000000)); }},
      // [pipe]
      {"pipe.stages", "0", "pipeline stages (0 = all ranks for pipeline algorithms, 1 for bp/dp); ranks = stages x replicas",
       [](TrainConfig& c, const std::string& v) { c.pipe.stages = int(toInt("pipe.stages", v, 0, 4096)); }},
      {"pipe.microbatches", "1", "micro-batches each replica's batch is split into",
       [](TrainConfig& c, const std::string& v) { c.pipe.microbatches = int(toInt("pipe.microbatches", v, 1, 65536)); }},
      {"pipe.partition", "", "first block of stages 1..S-1, e.g. 2,5,7 (empty = balanced by pipe.balance)",
       [](TrainConfig& c, const std::string& v) { c.pipe.partition = v; }},
      {"pipe.balance", "time", "stage balancing cost when pipe.partition is empty: time (measured) | macs",
       [](TrainConfig& c, const std::string& v) { c.pipe.balance = oneOf("pipe.balance", v, {"time", "macs"}); }},
      // [pipedream]
      {"pipedream.vertical_sync", "false", "every stage uses the weight version stage 0 used for a micro-batch",
       [](TrainConfig& c, const std::string& v) { c.pipedream.verticalSync = toBool("pipedream.vertical_sync", v); }},
      {"pipedream.drain_every", "64", "mini-batches between pipeline drains (checkpoint/stop points; 0 = once per epoch)",
       [](TrainConfig& c, const std::string& v) { c.pipedream.drainEvery = int(toInt("pipedream.drain_every", v, 0, 1 << 30)); }},
      {"pipedream.stash", "true", "weight stashing: a backward uses its forward's weights (false: the current ones, SpecTrain's 'vanilla' MP)",
       [](TrainConfig& c, const std::string& v) { c.pipedream.stash = toBool("pipedream.stash", v); }},
      // [spectrain]
      {"spectrain.version", "1", "1: forward and backward on separately predicted weights; 2: stashed weights with an (S-k)-fold step",
       [](TrainConfig& c, const std::string& v) { c.spectrain.version = int(toInt("spectrain.version", v, 1, 2)); }},
      {"spectrain.max_distance", "-1", "version 1: cap on the prediction distance in steps (-1 = none, 0 = no prediction)",
       [](TrainConfig& c, const std::string& v) { c.spectrain.maxDistance = int(toInt("spectrain.max_distance", v, -1, 1 << 20)); }},
      // [petra]
      {"petra.synchronous", "false", "no delay: each micro-batch goes forward and backward through all stages before the next (backprop)",
       [](TrainConfig& c, const std::string& v) { c.petra.synchronous = toBool("petra.synchronous", v); }},
      {"petra.store_context", "false", "keep every layer's forward context until the backward (store-vjp; with delays: stashed weights too)",
       [](TrainConfig& c, const std::string& v) { c.petra.storeContext = toBool("petra.store_context", v); }},
      {"petra.store_input", "false", "keep each stage's input and recompute the forward in the backward (false: reversible blocks are inverted)",
       [](TrainConfig& c, const std::string& v) { c.petra.storeInput = toBool("petra.store_input", v); }},
      {"petra.store_params", "false", "keep the forward's weights for the backward (false: the backward uses the current weights)",
       [](TrainConfig& c, const std::string& v) { c.petra.storeParams = toBool("petra.store_params", v); }},
      {"petra.drain_every", "0", "mini-batches between pipeline drains (checkpoint/stop points; 0 = once per epoch)",
       [](TrainConfig& c, const std::string& v) { c.petra.drainEvery = int(toInt("petra.drain_every", v, 0, 1 << 30)); }},
      // [interlocking]
      {"interlocking.n", "2", "train.algo = interlocking: n-wise, gradients cross n-1 component boundaries (1 = local, 2 = pairwise, 3 = 3-wise, >= components = global)",
       [](TrainConfig& c, const std::string& v) { c.interlocking.n = int(toInt("interlocking.n", v, 1, 1 << 20)); }},
      {"interlocking.pairwise_mode", "next_only", "pairwise variant: next_only (component c trains on L_{c+1}) | sum (L_c + L_{c+1}) | mean",
       [](TrainConfig& c, const std::string& v) { c.interlocking.pairwiseMode = oneOf("interlocking.pairwise_mode", v, {"next_only", "sum", "mean"}); }},
      {"interlocking.aux", "conv128_bn_conv64_bn_gbpl_fc", "auxiliary head of every non-last component: '_'-separated convN, bn, gbpl, fc (or a comma list, one per component but the last)",
       [](TrainConfig& c, const std::string& v) {
         if (v.empty()) bad("interlocking.aux", v, "an architecture such as conv128_bn_conv64_bn_gbpl_fc or gbpl_fc");
         c.interlocking.aux = v;
       }},
      {"interlocking.blocks_per_component", "", "component split as block counts ending in rest, e.g. 5,4,4,rest (empty = the pipeline stages)",
       [](TrainConfig& c, const std::string& v) { c.interlocking.blocksPerComponent = v; }},
      {"interlocking.drain_every", "64", "mini-batches between pipeline drains (checkpoint/stop points; 0 = once per epoch)",
       [](TrainConfig& c, const std::string& v) { c.interlocking.drainEvery = int(toInt("interlocking.drain_every", v, 0, 1 << 30)); }},
      // [dp]
      {"dp.bucket_mb", "25", "gradient allreduce bucket size in MiB (overlapped with backward)",
       [](TrainConfig& c, const std::string& v) { c.dp.bucketMb = toDouble("dp.bucket_mb", v, 0.001, 1e6); }},
      // [dtp]
      {"dtp.beta", "0.7", "dtp: target step size beta (first target t_L = z - beta (softmax(z) - onehot(y)))",
       [](TrainConfig& c, const std::string& v) { c.dtp.beta = float(toDouble("dtp.beta", v, 1e-12, 1e6)); }},
      {"dtp.feedback_iterations", "20,30,35,55,20", "dtp: L-DRL iterations per step of G_1..G_L (input -> output order)",
       [](TrainConfig& c, const std::string& v) { c.dtp.feedbackIterations = toIntList("dtp.feedback_iterations", v, 0); }},
      {"dtp.feedback_noise", "0.4,0.4,0.2,0.2,0.08", "dtp: L-DRL noise scale sigma of G_1..G_L",
       [](TrainConfig& c, const std::string& v) {
         c.dtp.feedbackNoise = toFloatList("dtp.feedback_noise", v);
         for (float s : c.dtp.feedbackNoise)
           if (!(s > 0)) bad("dtp.feedback_noise", v, "positive values");
       }},
      {"dtp.feedback_lr", "1e-4,3.5e-4,8e-3,8e-3,0.18", "dtp: SGD learning rate of G_1..G_L (never scheduled)",
       [](TrainConfig& c, const std::string& v) {
         c.dtp.feedbackLr = toFloatList("dtp.feedback_lr", v);
         for (float s : c.dtp.feedbackLr)
           if (s < 0) bad("dtp.feedback_lr", v, "non-negative values");
       }},
      {"dtp.feedback_momentum", "0.9", "dtp: SGD momentum of the feedback weights (weight decay 0)",
       [](TrainConfig& c, const std::string& v) { c.dtp.feedbackMomentum = float(toDouble("dtp.feedback_momentum", v, 0, 0.999999)); }},
      {"dtp.feedback_samples", "1", "dtp: noise samples averaged per L-DRL iteration",
       [](TrainConfig& c, const std::string& v) { c.dtp.feedbackSamples = int(toInt("dtp.feedback_samples", v, 1, 1024)); }},
      {"dtp.rhat_indices", "clean", "dtp: pool indices for r^ = G(y + dy) in L-DRL: clean (spec, distributed-dtp) | noisy (scalingDTP's code: the noisy forward's)",
       [](TrainConfig& c, const std::string& v) { c.dtp.rhatIndices = oneOf("dtp.rhat_indices", v, {"clean", "noisy"}); }},
      {"dtp.assign", "balanced", "dtp_parallel: feedback layer -> rank: balanced (by iterations x MACs) | round_robin (G_i on rank i % ranks)",
       [](TrainConfig& c, const std::string& v) { c.dtp.assign = oneOf("dtp.assign", v, {"balanced", "round_robin"}); }},
      {"dtp.check_sync_every", "0", "dtp_parallel: steps between checks that all ranks hold identical weights (0 = each epoch)",
       [](TrainConfig& c, const std::string& v) { c.dtp.checkSyncEvery = toInt("dtp.check_sync_every", v, 0, INT64_MAX); }},
      {"dtp.bp_angle_every", "0", "dtp: every N steps, measure the angle between each block's DTP gradient and its backprop gradient (metrics bp_angle_F<i>, mean over the epoch; 0: off)",
       [](TrainConfig& c, const std::string& v) { c.dtp.bpAngleEvery = toInt("dtp.bp_angle_every", v, 0, INT64_MAX); }},
      // [parle] (spec seed-parle.md; -1 = the variant's reference default)
      {"parle.mode", "parle", "parle | elastic (Elastic-SGD: L = 0, or L = 1 and gamma = 0 in mpi2018) | entropy (Entropy-SGD: rho = 0, one replica)",
       [](TrainConfig& c, const std::string& v) { c.parle.mode = oneOf("parle.mode", v, {"parle", "elastic", "entropy"}); }},
      {"parle.variant", "optim2017", "optim2017 (distributed-ensembles optim.Parle, the paper's code) | mpi2018 (parle_mpi.py)",
       [](TrainConfig& c, const std::string& v) { c.parle.variant = oneOf("parle.variant", v, {"optim2017", "mpi2018"}); }},
      {"parle.L", "25", "inner steps per synchronisation (optim2017: 0 = Elastic-SGD every mini-batch)",
       [](TrainConfig& c, const std::string& v) { c.parle.L = int(toInt("parle.L", v, 0, 1 << 20)); }},
      {"parle.gamma", "0.01", "gamma_0: proximal coupling of the inner steps to the anchor",
       [](TrainConfig& c, const std::string& v) { c.parle.gamma = toDouble("parle.gamma", v, 0, 1e6); }},
      {"parle.rho", "-1", "rho_0: elastic coupling to the replica mean (-1: optim2017 1.0; mpi2018 0.01 = rho_cli, rho_0 = rho L n)",
       [](TrainConfig& c, const std::string& v) { c.parle.rho = toDouble("parle.rho", v, -1, 1e6); }},
      {"parle.gamma_max", "1", "cap of the annealed gamma",
       [](TrainConfig& c, const std::string& v) { c.parle.gammaMax = toDouble("parle.gamma_max", v, 0, 1e9); }},
      {"parle.rho_max", "10", "cap of the annealed rho",
       [](TrainConfig& c, const std::string& v) { c.parle.rhoMax = toDouble("parle.rho_max", v, 0, 1e9); }},
      {"parle.scoping", "0.5", "annealing: gamma and rho grow by 1 + scoping / nb per sync (optim2017) or per floor(t / L) (mpi2018); nb = mini-batches per epoch of a replica",
       [](TrainConfig& c, const std::string& v) { c.parle.scoping = toDouble("parle.scoping", v, 0, 1e6); }},
      {"parle.inner_lr", "-1", "inner learning rate; 0 = the scheduled optim.lr (-1: optim2017 0.1, mpi2018 0)",
       [](TrainConfig& c, const std::string& v) { c.parle.innerLr = toDouble("parle.inner_lr", v, -1, 1e6); }},
      {"parle.beta1", "-1", "weight of the old inner average (-1: optim2017 0 = last inner iterate, mpi2018 0.75)",
       [](TrainConfig& c, const std::string& v) { c.parle.beta1 = toDouble("parle.beta1", v, -1, 0.999999); }},
      {"parle.outer_momentum", "-1", "optim2017 outer-step momentum (-1 = optim.momentum)",
       [](TrainConfig& c, const std::string& v) { c.parle.outerMomentum = toDouble("parle.outer_momentum", v, -1, 1); }},
      {"parle.counter_per_tensor", "false", "mpi2018: advance the annealing counter once per parameter tensor per step, as the released parle_mpi.py does (spec 9.2)",
       [](TrainConfig& c, const std::string& v) { c.parle.counterPerTensor = toBool("parle.counter_per_tensor", v); }},
      {"parle.pipeline", "1f1b", "per-replica pipeline schedule when pipe.stages > 1: 1f1b | gpipe | mp",
       [](TrainConfig& c, const std::string& v) { c.parle.pipeline = oneOf("parle.pipeline", v, {"1f1b", "gpipe", "mp"}); }},
      {"parle.data", "shard", "replica data: shard (disjoint 1/n of each epoch, like dp) | full (every replica the whole set, own shuffle) | same (identical streams; tests)",
       [](TrainConfig& c, const std::string& v) { c.parle.data = oneOf("parle.data", v, {"shard", "full", "same"}); }},
      {"parle.init", "replica", "replica initialisation: replica (train.seed + replica, as the references) | same (train.seed everywhere)",
       [](TrainConfig& c, const std::string& v) { c.parle.init = oneOf("parle.init", v, {"replica", "same"}); }},
      {"parle.bn_refresh", "true", "re-estimate the master's batch-norm statistics on training data before each evaluation",
       [](TrainConfig& c, const std::string& v) { c.parle.bnRefresh = toBool("parle.bn_refresh", v); }},
      {"parle.bn_batches", "0", "micro-batches of that re-estimation (0 = the whole training set)",
       [](TrainConfig& c, const std::string& v) { c.parle.bnBatches = toInt("parle.bn_batches", v, 0, INT64_MAX); }},
      {"checkpoint.every_epochs", "1", "checkpoint every N epochs (0 = only at the end)",
       [](TrainConfig& c, const std::string& v) { c.checkpoint.everyEpochs = int(toInt("checkpoint.every_epochs", v, 0, 100000)); }},
      {"checkpoint.every_steps", "0", "checkpoint every N optimizer steps (0 = off)",
       [](TrainConfig& c, const std::string& v) { c.checkpoint.everySteps = toInt("checkpoint.every_steps", v, 0, INT64_MAX); }},
      {"checkpoint.keep", "2", "committed checkpoints to keep",
       [](TrainConfig& c, const std::string& v) { c.checkpoint.keep = int(toInt("checkpoint.keep", v, 1, 1000)); }},
  };
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

// Shortest decimal form that parses back to the same double (resolved values are re-parsed on
// the other ranks and on resume).
std::string fmtNum(double v) {
  for (int prec = 6; prec < 18; ++prec) {
    std::ostringstream os;
    os.precision(prec);
    os << v;
    if (std::stod(os.str()) == v) return os.str();
  }
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

void setResolved(TrainConfig& c, const std::string& key, const std::string& v) {
  for (auto& [k, val] : c.resolved)
    if (k == key) val = v;
}

void resolveParleChecked(TrainConfig& c, const std::map<std::string, std::string>& given);

// [parle]: the variant's reference defaults for -1 values and the settings the mode fixes; the
// effective values replace the given ones in the resolved config.
void resolveParle(TrainConfig& c, const std::map<std::string, std::string>& given) {
  resolveParleChecked(c, given);
  const ParleSection& p = c.parle;
  setResolved(c, "parle.L", std::to_string(p.L));
  setResolved(c, "parle.gamma", fmtNum(p.gamma));
  setResolved(c, "parle.rho", fmtNum(p.rho));
  setResolved(c, "parle.inner_lr", fmtNum(p.innerLr));
  setResolved(c, "parle.beta1", fmtNum(p.beta1));
  setResolved(c, "parle.outer_momentum", fmtNum(p.outerMomentum));
}

// A key the mode fixes may not be given with a different value.
void resolveParleChecked(TrainConfig& c, const std::map<std::string, std::string>& given) {
  ParleSection& p = c.parle;
  const bool a = p.variant == "mpi2018";
  if (p.rho < 0) p.rho = a ? 0.01 : 1.0;
  if (p.innerLr < 0) p.innerLr = a ? 0.0 : 0.1;
  if (p.beta1 < 0) p.beta1 = a ? 0.75 : 0.0;
  if (p.outerMomentum < 0) p.outerMomentum = c.optim.momentum;
  if (c.train.algo != "parle") return;
  auto fix = [&](const std::string& key, double& field, double value, const std::string& why) {
    if (given.count(key) && field != value) {
      std::ostringstream os;
      os << key << " = " << field << " contradicts parle.mode = " << p.mode << " (" << why << ")";
      throw ConfigError(os.str());
    }
    field = value;
  };
  if (p.mode == "elastic") {
    double L = p.L;
    fix("parle.L", L, a ? 1 : 0, a ? "mpi2018 Elastic-SGD is L = 1, gamma = 0" : "Elastic-SGD couples every mini-batch, L = 0");
    p.L = int(L);
    if (a) fix("parle.gamma", p.gamma, 0, "mpi2018 Elastic-SGD is L = 1, gamma = 0");
  } else if (p.mode == "entropy") {
    fix("parle.rho", p.rho, 0, "Entropy-SGD has no elastic coupling, rho = 0");
  }
  if (p.L == 0 && a) throw ConfigError("parle.L = 0: Elastic-SGD every mini-batch exists only in parle.variant = optim2017");
  if (c.optim.kind != OptimKind::kSgd)
    throw ConfigError("optim.name: train.algo = parle takes SGD with momentum for its inner and outer steps (set optim.name = sgd)");
  if (a && !c.optim.nesterov)
    throw ConfigError("optim.nesterov = false: parle.variant = mpi2018 uses its reference's Nesterov momentum "
                      "(v <- mu v + d, step d + v) in both loops; set optim.nesterov = true");
  if (c.train.accumSteps != 1)
    throw ConfigError("train.accum_steps = " + std::to_string(c.train.accumSteps) +
                      ": train.algo = parle takes one mini-batch per inner step (use pipe.microbatches to split it)");
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
  if (c.dtp.feedbackIterations.size() != c.dtp.feedbackNoise.size() ||
      c.dtp.feedbackIterations.size() != c.dtp.feedbackLr.size())
    throw ConfigError("dtp.feedback_iterations, dtp.feedback_noise and dtp.feedback_lr need one value per feedback "
                      "layer each, got " + std::to_string(c.dtp.feedbackIterations.size()) + ", " +
                      std::to_string(c.dtp.feedbackNoise.size()) + " and " + std::to_string(c.dtp.feedbackLr.size()));
  if (c.data.name == "hdf5" && (c.data.trainFile.empty() || c.data.testFile.empty()))
    throw ConfigError("data.name = hdf5 needs data.train_file and data.test_file");
  resolveParle(c, values);
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
    values[key] = o.substr(eq + 1);
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
