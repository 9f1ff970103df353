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
#include "bench/BenchStep.h"

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
    bench::BenchStep b(model, batch, BackendOptions{.device = device, .threads = threads});
    std::vector<double> times;
    for (int it = 0; it < warmup + iters; ++it) {
      const auto t0 = Clock::now();
      b.step();
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
                (long long)b.model->numParams());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sw_bench_step: %s\n", e.what());
    return 3;
  }
  return 0;
}
