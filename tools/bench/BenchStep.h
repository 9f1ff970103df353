// One zoo model with an SGD-momentum optimizer and a random batch on a backend: what the
// benchmarks (step_throughput, checkpoint_cost) time. step() is one full training step.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/BackendFactory.h"
#include "core/Rng.h"
#include "nn/Loss.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"

namespace sw::bench {

struct BenchStep {
  std::unique_ptr<Backend> be;
  std::unique_ptr<Model> model;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<SoftmaxCrossEntropy> loss;
  Tensor x, y;

  BenchStep(const std::string& name, int64_t batch, const BackendOptions& o) : be(makeBackend(o)) {
    const Shape sample = (name == "lenet" || name == "mlp") ? Shape{1, 28, 28} : Shape{3, 32, 32};
    ModelSpec spec;
    spec.name = name;
    spec.dropout = 0.f;  // the same network as PyTorch's script, which also uses p = 0
    spec.inputDropout = 0.f;
    model = buildModel(*be, spec, sample, 10, 1);
    OptimConfig oc;
    oc.momentum = 0.9f;
    opt = std::make_unique<Optimizer>(*be, model->params(), oc);
    loss = std::make_unique<SoftmaxCrossEntropy>(*be);
    Rng rng(3);
    std::vector<int64_t> d{batch};
    for (auto v : sample.dims()) d.push_back(v);
    Tensor xh = Tensor::empty(Shape(d)), yh = Tensor::empty(Shape{batch});
    for (int64_t i = 0; i < xh.numel(); ++i) xh.data()[i] = rng.normal();
    for (int64_t i = 0; i < batch; ++i) yh.data<int32_t>()[i] = int32_t(rng.below(10));
    x = be->fromHost(xh);
    y = be->fromHost(yh);
  }

  void step() {
    Ctx slot, lctx;
    Tensor logits = model->forward(x, slot, Mode::kTrain);
    loss->forward(logits, y, lctx);
    model->backward(loss->backward(lctx), slot, {}, InputGrad::kSkip);
    opt->step(0.01f);
    model->zeroGrad();
    be->synchronize();
  }
};

}  // namespace sw::bench
