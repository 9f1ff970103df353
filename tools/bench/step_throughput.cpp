// sw_bench_step: samples/s of one full training step (forward, loss, backward, SGD momentum
// update) of a zoo model on random data; prints one JSON line. The driver
// tools/bench/step_throughput runs it beside PyTorch and prints the ratio.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/Clock.h"
#include "core/Allocator.h"
#include "nn/Loss.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"
#include "train/Trainer.h"

using namespace sw;

int main(int argc, char** argv) {
  std::string model = "lenet", device = "cpu";
  int64_t batch = 128;
  int threads = 1, iters = 20, warmup = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--iters") iters = std::stoi(v);
    else if (k == "--warmup") warmup = std::stoi(v);
    else if (k == "--device") device = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  try {
    RuntimeSection rt{.threads = threads, .device = device};
    auto be = makeBackend(rt);
    Shape sample = (model == "lenet" || model == "mlp") ? Shape{1, 28, 28} : Shape{3, 32, 32};
    ModelSpec spec;
    spec.name = model;
    spec.dropout = 0.f;  // the same network on both sides; PyTorch's script also uses p = 0
    spec.inputDropout = 0.f;
    auto m = buildModel(*be, spec, sample, 10, 1);
    OptimConfig oc;
    oc.momentum = 0.9f;
    Optimizer opt(*be, m->params(), oc);
    SoftmaxCrossEntropy loss(*be);
    Rng rng(3);
    std::vector<int64_t> d{batch};
    for (auto v : sample.dims()) d.push_back(v);
    Tensor xh = Tensor::empty(Shape(d)), yh = Tensor::empty(Shape{batch});
    for (int64_t i = 0; i < xh.numel(); ++i) xh.data()[i] = rng.normal();
    for (int64_t i = 0; i < batch; ++i) yh.data<int32_t>()[i] = int32_t(rng.below(10));
    Tensor x = be->fromHost(xh), y = be->fromHost(yh);
    std::vector<double> times;
    for (int it = 0; it < warmup + iters; ++it) {
      const auto t0 = Clock::now();
      Ctx slot, lctx;
      Tensor logits = m->forward(x, slot, Mode::kTrain);
      loss.forward(logits, y, lctx);
      m->backward(loss.backward(lctx), slot, {}, InputGrad::kSkip);
      opt.step(0.01f);
      m->zeroGrad();
      be->synchronize();
      const double s = secondsSince(t0);
      if (it >= warmup) times.push_back(s);
    }
    std::sort(times.begin(), times.end());
    const double med = times[times.size() / 2];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::printf("{\"impl\": \"stagewise\", \"model\": \"%s\", \"batch\": %lld, \"threads\": %d, "
                "\"samples_per_s\": %.2f, \"step_ms\": %.3f, \"peak_rss_mb\": %.1f, \"params\": %lld}\n",
                model.c_str(), (long long)batch, threads, batch / med, med * 1e3, ru.ru_maxrss / 1024.0,
                (long long)m->numParams());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sw_bench_step: %s\n", e.what());
    return 3;
  }
  return 0;
}
