// What the asynchronous-pipeline tests share (SpecTrain: algo/pipedream/SpecTrainMpiTest.cpp;
// the delayed-gradient pipeline: algo/petra/PetraMpiTest.cpp): configs for one stage per rank,
// comparison helpers, and Replay, the single-process replay of a schedule on the whole model.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <deque>
#include <filesystem>
#include <map>

#include "comm/Mpi.h"
#include "mpi/MpiTestUtil.h"
#include "config/TrainConfig.h"
#include "data/Dataset.h"
#include "nn/Zoo.h"
#include "algo/backprop/OneFOneBOrder.h"
#include "nn/Partition.h"
#include "train/Trainer.h"


namespace sw {
namespace {

using mpitest::runtime;
using mpitest::sharedDir;

inline std::string partition(int S, bool revnet) {
  if (revnet) return S == 2 ? "5" : S == 3 ? "3,6" : "2,4,7";  // tops: 2: D; 3: R, R; 4: R, D, R
  return S == 2 ? "2" : S == 3 ? "1,2" : "1,2,3";
}

inline TrainConfig mlpCfg(std::vector<std::string> extra) {
  const int S = runtime().world().size();
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=240", "data.synthetic_test=64",
                                "data.synthetic_shape=1,8,8", "model.name=mlp", "model.hidden=40,32,24",
                                "train.batch_size=16", "train.epochs=2", "optim.lr=0.05", "optim.momentum=0.9",
                                "optim.weight_decay=0.001", "runtime.threads=1", "train.seed=5",
                                "checkpoint.every_epochs=0", "pipe.partition=" + partition(S, false)};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

inline TrainConfig revCfg(std::vector<std::string> extra) {
  const int S = runtime().world().size();
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=96", "data.synthetic_test=32",
                                "data.synthetic_shape=3,8,8", "model.name=revnet18", "model.width=2",
                                "train.batch_size=8", "train.epochs=1", "optim.lr=0.02", "optim.momentum=0.9",
                                "optim.nesterov=true", "runtime.threads=1", "train.seed=3", "checkpoint.every_epochs=0",
                                "train.algo=petra", "pipe.partition=" + partition(S, true)};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

inline std::vector<float> flat(const std::vector<Param*>& ps) {
  std::vector<float> v;
  for (Param* p : ps) v.insert(v.end(), p->value.data(), p->value.data() + p->value.numel());
  return v;
}

inline std::vector<float> momenta(Trainer& t) {
  std::vector<float> v;
  for (ParamState& s : t.optimizer().state())
    if (s.buf.defined()) v.insert(v.end(), s.buf.data(), s.buf.data() + s.buf.numel());
  return v;
}

// ||a - b|| / ||b||.
inline double l2Rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]), den += double(b[i]) * b[i];
  return std::sqrt(num / std::max(den, 1e-300));
}

inline double maxRel(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i)
    m = std::max(m, std::abs(double(a[i]) - b[i]) / std::max(1e-3, std::abs(double(b[i]))));
  return m;
}

inline std::unique_ptr<Trainer> trainDist(const TrainConfig& c, const std::string& dir) {
  auto t = std::make_unique<Trainer>(c, dir, "", &runtime().world());
  t->prepare();
  t->run();
  return t;
}

// Everything a single process needs to replay a schedule on the whole model.
struct Replay {
  TrainConfig cfg;
  std::unique_ptr<Backend> be;
  DataSplits data;
  std::unique_ptr<BatchLoader> loader;
  std::unique_ptr<Model> model;
  std::vector<BlockRange> stages;
  std::vector<std::unique_ptr<Optimizer>> opts;
  std::unique_ptr<SoftmaxCrossEntropy> loss;
  explicit Replay(const TrainConfig& c) : cfg(c) {
    be = makeBackend(cfg.runtime);
    data = loadData(cfg.data);
    loader = std::make_unique<BatchLoader>(data.train, cfg.train.batchSize, cfg.train.seed, Shard{}, cfg.augment,
                                           Shuffle::kYes, DropLast::kNo, Augment::kYes);
    model = buildModel(*be, cfg.model, loader->sampleShape(), data.train.classes, cfg.train.seed);
    auto parts = partitionExplicit(cfg.pipe.partition, model->numBlocks(), runtime().world().size(), "pipe.partition");
    for (auto& p : parts) {
      stages.push_back({p.begin, p.end});
      opts.push_back(std::make_unique<Optimizer>(*be, model->params(stages.back()), cfg.optim));
    }
    loss = std::make_unique<SoftmaxCrossEntropy>(*be);
  }
  int S() const { return int(stages.size()); }
  std::vector<Tensor> copyOf(int k) {
    std::vector<Tensor> v;
    for (Param* p : model->params(stages[k])) v.push_back(p->value.clone());
    return v;
  }
  // Swaps stage k's weights with `w` (call again to swap back).
  void swapIn(int k, std::vector<Tensor>& w) {
    auto ps = model->params(stages[k]);
    for (size_t i = 0; i < ps.size(); ++i) std::swap(ps[i]->value, w[i]);
  }
  void step(int k, float scale = 1.f) {
    opts[k]->step(cfg.optim.kind == OptimKind::kSgd ? cfg.lr.lr : cfg.lr.lr, scale);
    model->zeroGrad(stages[k]);
  }
};

// SpecTrain v1 by its definition: each stage's op order of seed-spectrain.md 1.1 (drained every
// `pipedream.drain_every` mini-batches), prediction computed here from the optimizer state.

}  // namespace
}  // namespace sw
