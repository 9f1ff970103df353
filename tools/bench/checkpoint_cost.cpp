// sw_bench_checkpoint: what checkpoint integrity costs. Writes one rank's checkpoint of a zoo
// model (parameters, buffers, SGD momentum) the way the trainer does -- shard written and fsynced,
// then listed for the manifest -- alternately with checksums (XXH3 of every dataset, read-back of
// every dataset, XXH3 of the whole file) and without, and prints the median of each, their ratio,
// the time `checkpoint verify` takes, and one training step for scale. One JSON line.
//   sw_bench_checkpoint [--model resnet18] [--reps 7] [--dir /tmp] [--threads 1] [--batch 32]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/BenchStep.h"
#include "core/Clock.h"
#include "io/Checkpoint.h"

using namespace sw;
namespace fs = std::filesystem;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "resnet18", dir = "/tmp";
  int reps = 7, threads = 1;
  int64_t batch = 32;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model = v;
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--dir") dir = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--batch") batch = std::stoll(v);
    else {
      std::fprintf(stderr, "sw_bench_checkpoint: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  const std::string run = dir + "/sw_bench_ckpt_" + std::to_string(::getpid());
  try {
    bench::BenchStep net(model, batch, BackendOptions{.device = "cpu", .threads = threads});
    // Training steps: the optimizer then has momentum to save, and one step's time for scale.
    std::vector<double> steps;
    for (int it = 0; it < 4; ++it) {
      const auto t0 = Clock::now();
      net.step();
      if (it > 0) steps.push_back(secondsSince(t0));
    }
    Model* m = net.model.get();
    Optimizer& opt = *net.opt;

    const BlockRange all{0, m->numBlocks()};
    const ShardMeta meta{.algo = "bp", .model = model, .rank = 0, .world = 1, .configText = ""};
    TrainProgress p;
    std::vector<double> on, off, verify, writeOn, writeOff;
    int64_t bytes = 0;
    for (int r = 0; r < 2 * reps + 2; ++r) {
      const bool sums = r % 2 == 0;
      CheckpointStore store(run);
      store.setChecksums(sums);
      p.step = r + 1;
      const auto t0 = Clock::now();
      store.writeShard(p.step, meta, *m, all, opt, p, m->dropoutRng().state());
      const double w = secondsSince(t0);
      Manifest man{.format = 2, .step = p.step, .world = 1, .stages = 1, .replicas = 1, .parts = {all}};
      man.files = store.rankFiles(p.step, 0);
      store.commit(man, 1);
      const double s = secondsSince(t0);
      if (r < 2) continue;  // warm-up pair
      (sums ? on : off).push_back(s);
      (sums ? writeOn : writeOff).push_back(w);
      if (sums) {
        bytes = man.files.front().bytes;
        const auto t1 = Clock::now();
        CheckpointStore::verify(store.stepDir(p.step), -1);
        verify.push_back(secondsSince(t1));
      }
    }
    fs::remove_all(run);
    const double a = median(on), b = median(off);
    std::printf("{\"model\": \"%s\", \"params\": %lld, \"shard_mb\": %.1f, \"checkpoint_ms_checksums\": %.2f, "
                "\"checkpoint_ms_plain\": %.2f, \"ratio\": %.3f, \"write_ms_checksums\": %.2f, \"write_ms_plain\": %.2f, "
                " \"verify_ms\": %.2f, \"train_step_ms\": %.1f, "
                "\"reps\": %d}\n",
                model.c_str(), (long long)m->numParams(), bytes / 1e6, a * 1e3, b * 1e3, a / b, median(writeOn) * 1e3,
                median(writeOff) * 1e3, median(verify) * 1e3,
                median(steps) * 1e3, reps);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(run, ec);
    std::fprintf(stderr, "sw_bench_checkpoint: %s\n", e.what());
    return 3;
  }
  return 0;
}
