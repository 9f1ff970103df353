#include "train/EpochLoop.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "core/Clock.h"
#include "core/Error.h"
#include "core/Log.h"

namespace sw {
namespace {
std::string fmtTime(double s) {
  std::ostringstream os;
  if (s >= 3600) os << int(s / 3600) << "h" << std::setw(2) << std::setfill('0') << int(s / 60) % 60 << "m";
  else if (s >= 60) os << int(s / 60) << "m" << std::setw(2) << std::setfill('0') << int(s) % 60 << "s";
  else os << std::fixed << std::setprecision(1) << s << "s";
  return os.str();
}
}  // namespace

std::unique_ptr<MetricsLog> openRunDirectory(const TrainConfig& cfg, const std::string& outDir, bool resuming,
                                             int64_t metricsBytes) {
  std::filesystem::create_directories(outDir);
  std::ofstream c(outDir + "/config.ini");
  c << "# resolved stagewise config\n" << iniText(cfg);
  return std::make_unique<MetricsLog>(outDir + "/metrics.jsonl", resuming ? metricsBytes : -1);
}

EpochLoop::EpochLoop(const TrainConfig& cfg, Communicator& world, TrainProgress& progress, MetricsLog* metrics,
                     const LrSchedule& lr, int64_t batchesPerEpoch)
    : cfg_(cfg), world_(world), p_(progress), metrics_(metrics), lr_(lr), nb_(batchesPerEpoch) {}

void EpochLoop::injectFault() const {
  const FaultSpec& f = cfg_.runtime.fault;
  if (f.kind.empty() || f.rank != world_.rank() || p_.step < f.step) return;
  if (f.kind == "throw")
    throw Error("injected fault (runtime.fault = throw@" + std::to_string(f.rank) + ":" + std::to_string(f.step) +
                ") at step " + std::to_string(p_.step));
  if (f.kind == "kill") std::raise(SIGKILL);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // hang: the watchdog must fire
}

void EpochLoop::logProgress(int epoch, int64_t startBatch, double el, bool tty) const {
  const double rate = double(p_.batch - startBatch) * double(cfg_.train.batchSize) / std::max(el, 1e-9);
  const double eta = double(nb_ - p_.batch) * double(cfg_.train.batchSize) / std::max(rate, 1e-9);
  std::ostringstream os;
  os << "epoch " << epoch + 1 << "/" << cfg_.train.epochs << " [" << p_.batch << "/" << nb_ << "] loss " << std::fixed
     << std::setprecision(4) << p_.lossSum / double(std::max<int64_t>(1, p_.seen)) << " acc " << std::setprecision(1)
     << 100.0 * double(p_.correct) / double(std::max<int64_t>(1, p_.seen)) << "% " << std::setprecision(0) << rate
     << " samples/s ETA " << fmtTime(eta);
  if (tty) std::fprintf(stderr, "\r%s   ", os.str().c_str());
  else SW_INFO(os.str());
}

MetricsRecord EpochLoop::trainRecord(EpochHooks& h, int epoch, int64_t startBatch, double epochSec, double wall) {
  // One reduction for the record: the trainer's sums, then per rank (idle, wait, RSS, extras).
  const std::vector<double> sums = h.sums ? h.sums() : std::vector<double>{};
  std::vector<RankValue> mine = h.rankValues ? h.rankValues() : std::vector<RankValue>{};
  const size_t P = size_t(world_.size()), per = 3 + mine.size(), me = sums.size() + size_t(world_.rank()) * per;
  std::vector<double> red(sums.size() + P * per, 0.0);
  std::copy(sums.begin(), sums.end(), red.begin());
  {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    const auto [idle, waitMs] = h.waits ? h.waits() : std::pair<double, double>{0.0, 0.0};
    red[me] = idle;
    red[me + 1] = waitMs;
    red[me + 2] = double(ru.ru_maxrss) / 1024.0;
    for (size_t i = 0; i < mine.size(); ++i) red[me + 3 + i] = mine[i].value;
  }
  world_.allReduceValues(red, ReduceOp::kSum);
  const double samples = double(p_.batch - startBatch) * double(cfg_.train.batchSize);
  MetricsRecord tr{.epoch = epoch, .step = p_.step, .split = "train",
                   .loss = p_.seen ? p_.lossSum / double(p_.seen) : 0,
                   .acc = p_.seen ? double(p_.correct) / double(p_.seen) : 0,
                   .samplesPerSec = samples / std::max(epochSec, 1e-9), .wallSec = wall,
                   .extra = {{"lr", lr_.at(epoch, std::max<int64_t>(0, p_.batch - 1), nb_)}}};
  if (h.trainExtras) h.trainExtras(epoch, std::vector<double>(red.begin(), red.begin() + long(sums.size())), tr);
  const bool listRanks = P > 1 && P <= 16;
  double idleMax = 0, idleMean = 0, rssMax = 0;
  std::vector<double> extraMax(mine.size(), 0.0);
  for (size_t r = 0; r < P; ++r) {
    const double* v = red.data() + sums.size() + r * per;
    idleMax = std::max(idleMax, v[0]);
    idleMean += v[0] / double(P);
    rssMax = std::max(rssMax, v[2]);
    const std::string R = "_rank" + std::to_string(r);
    if (listRanks) {
      tr.extra.push_back({"idle" + R, v[0]});
      tr.extra.push_back({"wait_ms_per_step" + R, v[1]});
      tr.extra.push_back({"peak_rss_mb" + R, v[2]});
    }
    for (size_t i = 0; i < mine.size(); ++i) {
      extraMax[i] = std::max(extraMax[i], v[3 + i]);
      if (listRanks || (mine[i].always && P <= 16)) tr.extra.push_back({mine[i].name + R, v[3 + i]});
    }
  }
  tr.extra.push_back({"idle_mean", idleMean});
  tr.extra.push_back({"idle_max", idleMax});
  tr.extra.push_back({"peak_rss_mb_max", rssMax});
  for (size_t i = 0; i < mine.size(); ++i)
    if (mine[i].max) tr.extra.push_back({mine[i].name + "_max", extraMax[i]});
  return tr;
}

EvalResult EpochLoop::run(EpochHooks& h, const std::atomic<bool>* stop, bool* stopped) {
  const bool leader = world_.rank() == 0;
  const bool tty = leader && isatty(STDERR_FILENO);
  const auto t0 = Clock::now();
  const double wall0 = p_.wallSeconds;
  auto wall = [&] { return wall0 + secondsSince(t0); };
  auto resetEpoch = [&](int e) {
    p_.epoch = e;
    p_.batch = 0;
    p_.lossSum = 0;
    p_.correct = p_.seen = 0;
  };
  EvalResult last;
  bool done = false;
  for (int epoch = p_.epoch; epoch < cfg_.train.epochs && !done; ++epoch) {
    if (p_.epoch != epoch || p_.batch == 0) resetEpoch(epoch);
    if (h.epochBegin) h.epochBegin(epoch);
    const auto te = Clock::now();
    const int64_t startBatch = p_.batch;
    auto lastLog = Clock::now();
    while (p_.batch < nb_) {
      injectFault();
      const int64_t stepBefore = p_.step;
      const RoundResult r = h.round(epoch, stop && stop->load());
      const RoundTotals& tot = r.totals;
      p_.batch += r.batches;
      p_.step += r.updates;
      p_.lossSum += tot.lossSum;
      p_.correct += int64_t(tot.correct);
      p_.seen += int64_t(tot.seen);
      if (h.afterRound) h.afterRound();
      if (leader && (tty ? secondsSince(lastLog) > 0.5 : secondsSince(lastLog) > cfg_.train.logEverySeconds)) {
        lastLog = Clock::now();
        logProgress(epoch, startBatch, secondsSince(te), tty);
      }
      const int64_t every = cfg_.checkpoint.everySteps;
      if (every > 0 && p_.step / every != stepBefore / every) {
        p_.wallSeconds = wall();
        h.checkpoint();
      }
      const bool stepLimit = cfg_.train.maxSteps > 0 && p_.step >= cfg_.train.maxSteps;
      if (stepLimit && p_.batch == nb_) {
        done = true;  // the limit falls on the epoch's end: finish the epoch normally
        break;
      }
      if (stepLimit) {
        // Mid-epoch stop: checkpoint the exact position so a resumed run continues seamlessly.
        if (tty) std::fprintf(stderr, "\n");
        if (leader)
          SW_INFO("train.max_steps = " << cfg_.train.maxSteps << " reached at epoch " << epoch + 1 << " batch "
                                       << p_.batch);
        p_.wallSeconds = wall();
        h.checkpoint();
        return h.evaluate(epoch);
      }
      if (tot.stop) {
        if (tty) std::fprintf(stderr, "\n");
        if (leader) SW_INFO("stop requested: checkpointing at step " << p_.step << " and exiting");
        p_.wallSeconds = wall();
        h.checkpoint();
        if (stopped) *stopped = true;
        return last;
      }
    }
    if (tty) std::fprintf(stderr, "\n");
    const double epochSec = secondsSince(te);
    if (h.epochEnd) h.epochEnd(epoch);
    const MetricsRecord tr = trainRecord(h, epoch, startBatch, epochSec, wall());
    if (leader) metrics_->write(tr);
    const auto tv = Clock::now();
    last = h.evaluate(epoch);
    const MetricsRecord te2{.epoch = epoch, .step = p_.step, .split = "test", .loss = last.loss, .acc = last.acc,
                            .samplesPerSec = double(last.samples) / std::max(secondsSince(tv), 1e-9),
                            .wallSec = wall(), .extra = {{"top5", last.top5}}};
    if (leader) {
      metrics_->write(te2);
      SW_INFO("epoch " << epoch + 1 << "/" << cfg_.train.epochs << ": train loss " << std::fixed
                       << std::setprecision(4) << tr.loss << " acc " << std::setprecision(2) << 100 * tr.acc
                       << "% | test loss " << std::setprecision(4) << last.loss << " acc " << std::setprecision(2)
                       << 100 * last.acc << "% | " << std::setprecision(0) << tr.samplesPerSec << " samples/s, epoch "
                       << fmtTime(epochSec) << (h.epochNote ? h.epochNote(epoch) : std::string()));
    }
    resetEpoch(epoch + 1);
    p_.wallSeconds = wall();
    const bool lastEpoch = epoch + 1 == cfg_.train.epochs || done;
    if (lastEpoch || (cfg_.checkpoint.everyEpochs > 0 && (epoch + 1) % cfg_.checkpoint.everyEpochs == 0))
      h.checkpoint();
  }
  return last;
}

}  // namespace sw
