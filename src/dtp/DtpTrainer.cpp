// The DTP training loop. Determinism: initialisation, shuffling and augmentation derive from
// train.seed exactly as for the other algorithms, every rank loads the same batch (shard 0 of 1),
// and L-DRL noise is keyed on (seed, step, block, iteration), so a checkpoint needs no RNG state
// and sequential and layer-parallel runs draw the same noise.
#include "dtp/DtpTrainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "coord/Coordinator.h"
#include "core/Error.h"
#include "core/Log.h"
#include "dtp/DtpCheckpoint.h"

namespace fs = std::filesystem;

namespace sw {
namespace {
using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

bool isDtpAlgo(const std::string& algo) { return algo == "dtp" || algo == "dtp_parallel"; }

DtpTrainer::DtpTrainer(TrainConfig cfg, std::string outDir, std::string resumeDir, Communicator* world)
    : cfg_(std::move(cfg)), outDir_(std::move(outDir)), resumeDir_(std::move(resumeDir)), world_(world) {
  if (!world_) {
    self_ = makeSelfCommunicator();
    world_ = self_.get();
  }
}

DtpTrainer::~DtpTrainer() = default;

dtp::DtpShardMeta DtpTrainer::meta() const {
  return {.algo = cfg_.train.algo, .model = cfg_.model.name, .configText = cfg_.iniText(), .rank = world_->rank(),
          .world = world_->size(), .owner = engine_->owner()};
}

void DtpTrainer::prepare() {
  agree(*world_, [&] {
    const std::string& algo = cfg_.train.algo;
    if (!isDtpAlgo(algo)) throw ConfigError("train.algo = " + algo + " is not run by the DTP trainer");
    // The rank count first, before any data is read.
    if (algo == "dtp" && world_->size() != 1)
      throw ConfigError("train.algo = dtp is sequential and runs on one rank, this job has " +
                        std::to_string(world_->size()) + " (use train.algo = dtp_parallel)");
    if (cfg_.train.accumSteps != 1)
      throw ConfigError("train.accum_steps = " + std::to_string(cfg_.train.accumSteps) +
                        ": DTP updates after every batch (its targets depend on the current weights); use 1");
    if (cfg_.pipe.microbatches != 1 || cfg_.pipe.stages > 1)
      throw ConfigError("pipe.*: train.algo = " + algo + " does not pipeline (pipe.stages and pipe.microbatches must stay 1)");
    be_ = makeBackend(cfg_.runtime);
    data_ = loadData(cfg_.data);
    if (data_.train.classes != data_.test.classes)
      throw DataError("train and test splits disagree on the class count (" + std::to_string(data_.train.classes) +
                      " vs " + std::to_string(data_.test.classes) + ")");
    // Every rank loads the same batches (layer parallelism, not data parallelism).
    loader_ = std::make_unique<BatchLoader>(data_.train, cfg_.train.batchSize, cfg_.train.seed, Shard{0, 1},
                                            cfg_.augment, Shuffle::kYes, DropLast::kNo, Augment::kYes);
    if (loader_->batchesPerEpoch() == 0)
      throw DataError(data_.train.source + ": no training batch (data set smaller than one batch?)");
    model_ = buildModel(*be_, cfg_.model, loader_->sampleShape(), data_.train.classes, cfg_.train.seed);
    g_ = std::make_unique<dtp::FeedbackNet>(*be_, *model_, cfg_.model.name, cfg_.train.seed);
    dtp::Hyper hp = dtp::Hyper::fromConfig(cfg_.dtp, g_->numBlocks(), cfg_.train.seed);
    std::vector<double> cost(size_t(g_->numBlocks()), 0.0);
    for (int i = 1; i < g_->numBlocks(); ++i) cost[size_t(i)] = dtp::feedbackCost(*model_, *g_, i, hp);
    const auto owner = dtp::assignLayers(cost, world_->size(), dtp::parseAssign(cfg_.dtp.assign));
    engine_ = std::make_unique<dtp::DtpEngine>(*model_, *g_, hp, cfg_.optim, *world_, owner);
    lr_ = std::make_unique<LrSchedule>(cfg_.lr);
    if (world_->rank() == 0) {
      std::ostringstream os;
      double total = 0, worst = 0;
      std::vector<double> load(size_t(world_->size()), 0.0);
      for (int i = 1; i < g_->numBlocks(); ++i) {
        os << (i > 1 ? ", " : "") << "G" << i << "->rank " << owner[size_t(i)];
        load[size_t(owner[size_t(i)])] += cost[size_t(i)];
        total += cost[size_t(i)];
      }
      for (double l : load) worst = std::max(worst, l);
      SW_INFO("dtp: feedback net " << g_->numParams() << " parameters; " << os.str() << " (ideal feedback speed-up "
                                   << std::fixed << std::setprecision(2) << total / std::max(worst, 1e-30) << "x)");
    }
  });
  if (!resumeDir_.empty()) {
    agree(*world_, [&] {
      CheckpointStore store(resumeDir_);
      auto latest = store.latest();
      if (!latest) throw InputError(resumeDir_ + ": no committed checkpoint to resume from");
      dtp::readDtpShard(*latest, meta(), *model_, *g_, *engine_, progress_);
      if (progress_.epoch >= cfg_.train.epochs)
        throw InputError(*latest + ": the run already finished " + std::to_string(progress_.epoch) +
                         " epochs and train.epochs = " + std::to_string(cfg_.train.epochs) +
                         "; raise train.epochs to train further");
    });
  }
}

EvalResult DtpTrainer::evaluate(const Dataset& d) {
  const int64_t eb = cfg_.train.evalBatchSize;
  BatchLoader ev(d, eb, cfg_.train.seed, Shard{0, 1}, cfg_.augment, Shuffle::kNo, DropLast::kNo, Augment::kNo);
  ev.seek(0, 0);
  // Batch b is evaluated by rank b % P: every sample once, whatever the rank count (pitfall 13).
  double lossSum = 0, correct = 0, seen = 0;
  Batch b;
  Ctx ctx;
  for (int64_t k = 0; ev.next(b); ++k) {
    if (k % world_->size() != world_->rank()) continue;
    const Tensor x = be_->fromHost(b.x), labels = be_->fromHost(b.labels);
    const Tensor z = model_->forward(x, ctx, Mode::kEval);
    Tensor probs = be_->empty(z.shape());
    lossSum += double(be_->softmaxXentForward(z, labels, probs)) * double(b.size());
    correct += double(be_->countCorrect(z, labels));
    seen += double(b.size());
    ctx.clear();
  }
  std::vector<double> v{lossSum, correct, seen};
  world_->allReduceValues(v, ReduceOp::kSum);
  EvalResult e;
  e.samples = int64_t(v[2]);
  e.loss = v[2] > 0 ? v[0] / v[2] : 0;
  e.acc = v[2] > 0 ? v[1] / v[2] : 0;
  return e;
}

void DtpTrainer::checkpoint() {
  if (!ckpt_) return;
  progress_.metricsBytes = metrics_ ? metrics_->bytes() : 0;
  dtp::writeDtpShard(*ckpt_, progress_.step, meta(), *model_, *g_, *engine_, progress_);
  commitCheckpoint(*world_, [&] { ckpt_->commit(progress_.step, world_->size(), cfg_.checkpoint.keep); });
}

void DtpTrainer::injectFault() {
  const FaultSpec& f = cfg_.runtime.fault;
  if (f.kind.empty() || f.rank != world_->rank() || progress_.step < f.step) return;
  if (f.kind == "throw")
    throw Error("injected fault (runtime.fault = throw@" + std::to_string(f.rank) + ":" + std::to_string(f.step) +
                ") at step " + std::to_string(progress_.step));
  if (f.kind == "kill") std::raise(SIGKILL);
  for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));  // hang: the watchdog must fire
}

EvalResult DtpTrainer::run(const std::atomic<bool>* stop) {
  if (!engine_) prepare();
  const bool leader = world_->rank() == 0;
  const int P = world_->size();
  if (leader) {
    fs::create_directories(outDir_);
    std::ofstream c(outDir_ + "/config.ini");
    c << "# resolved stagewise config\n" << cfg_.iniText();
    metrics_ = std::make_unique<MetricsLog>(outDir_ + "/metrics.jsonl", resumeDir_.empty() ? -1 : progress_.metricsBytes);
  }
  ckpt_ = std::make_unique<CheckpointStore>(outDir_);
  const bool tty = leader && isatty(STDERR_FILENO);
  const int64_t nb = loader_->batchesPerEpoch();
  const size_t nblocks = size_t(g_->numBlocks());
  const auto t0 = Clock::now();
  const double wall0 = progress_.wallSeconds;
  auto wall = [&] { return wall0 + secondsSince(t0); };
  if (leader)
    SW_INFO("model " << cfg_.model.name << ": " << model_->numParams() << " parameters, " << data_.train.size()
                     << " training samples, " << nb << " batches/epoch, " << be_->name() << " backend, algo "
                     << cfg_.train.algo << " on " << P << (P == 1 ? " rank" : " ranks"));
  // Identical initialisation on every rank is by construction (same seed); verify it once.
  resyncs_ += engine_->checkAndResync() ? 1 : 0;
  EvalResult last;
  bool done = false;
  for (int epoch = progress_.epoch; epoch < cfg_.train.epochs && !done; ++epoch) {
    if (progress_.epoch != epoch || progress_.batch == 0) {
      progress_.epoch = epoch;
      progress_.batch = 0;
      progress_.lossSum = 0;
      progress_.correct = progress_.seen = 0;
    }
    loader_->seek(epoch, progress_.batch);
    const auto te = Clock::now();
    const int64_t startBatch = progress_.batch;
    auto lastLog = Clock::now();
    // Per-epoch sums on this rank: local losses, L-DRL losses (owned blocks), phase seconds.
    std::vector<double> local(nblocks, 0.0), drl(nblocks, 0.0);
    double tForward = 0, tFeedback = 0, tSync = 0, tUpdate = 0;
    int64_t steps = 0;
    Batch batch;
    while (progress_.batch < nb) {
      injectFault();
      if (!loader_->next(batch)) throw Error("data loader ended early in epoch " + std::to_string(epoch));
      const float lr = lr_->at(epoch, progress_.batch, nb);
      const dtp::StepStats st = engine_->step(batch, progress_.step, lr);
      for (size_t i = 0; i < nblocks; ++i) {
        local[i] += st.localLoss[i];
        drl[i] += st.drlLoss[i];
      }
      tForward += st.forward;
      tFeedback += st.feedback;
      tSync += st.sync;
      tUpdate += st.update;
      ++steps;
      // Every rank computed the same logits: count them once (rank 0), OR the stop flags.
      const RoundTotals tot = roundEnd(*world_, leader ? st.ce * double(st.seen) : 0.0, leader ? st.correct : 0,
                                       leader ? st.seen : 0, stop && stop->load());
      const int64_t stepBefore = progress_.step;
      ++progress_.batch;
      ++progress_.step;
      progress_.lossSum += tot.lossSum;
      progress_.correct += int64_t(tot.correct);
      progress_.seen += int64_t(tot.seen);
      if (cfg_.dtp.checkSyncEvery > 0 && progress_.step % cfg_.dtp.checkSyncEvery == 0)
        resyncs_ += engine_->checkAndResync() ? 1 : 0;
      if (leader && (tty ? secondsSince(lastLog) > 0.5 : secondsSince(lastLog) > cfg_.train.logEverySeconds)) {
        lastLog = Clock::now();
        const double el = secondsSince(te);
        const double rate = double(progress_.batch - startBatch) * double(cfg_.train.batchSize) / std::max(el, 1e-9);
        std::ostringstream os;
        os << "epoch " << epoch + 1 << "/" << cfg_.train.epochs << " [" << progress_.batch << "/" << nb << "] loss "
           << std::fixed << std::setprecision(4) << progress_.lossSum / std::max<int64_t>(1, progress_.seen) << " acc "
           << std::setprecision(1) << 100.0 * double(progress_.correct) / double(std::max<int64_t>(1, progress_.seen))
           << "% " << std::setprecision(0) << rate << " samples/s";
        if (tty) std::fprintf(stderr, "\r%s   ", os.str().c_str());
        else SW_INFO(os.str());
      }
      const int64_t every = cfg_.checkpoint.everySteps;
      if (every > 0 && progress_.step / every != stepBefore / every) {
        progress_.wallSeconds = wall();
        checkpoint();
      }
      const bool stepLimit = cfg_.train.maxSteps > 0 && progress_.step >= cfg_.train.maxSteps;
      if (stepLimit && progress_.batch == nb) {
        done = true;
        break;
      }
      if (stepLimit) {
        if (tty) std::fprintf(stderr, "\n");
        if (leader)
          SW_INFO("train.max_steps = " << cfg_.train.maxSteps << " reached at epoch " << epoch + 1 << " batch "
                                       << progress_.batch);
        progress_.wallSeconds = wall();
        checkpoint();
        return evaluate(data_.test);
      }
      if (tot.stop) {
        if (tty) std::fprintf(stderr, "\n");
        if (leader) SW_INFO("stop requested: checkpointing at step " << progress_.step << " and exiting");
        progress_.wallSeconds = wall();
        checkpoint();
        stoppedBySignal_ = true;
        return last;
      }
    }
    if (tty) std::fprintf(stderr, "\n");
    const double epochSec = secondsSince(te);
    resyncs_ += engine_->checkAndResync() ? 1 : 0;
    // One reduction for the epoch's record: L-DRL losses live on the blocks' owners, and the
    // per-rank phase times and peak memory are gathered as in Trainer's records.
    constexpr size_t kPer = 4;
    std::vector<double> red(nblocks + size_t(P) * kPer, 0.0);
    for (size_t i = 0; i < nblocks; ++i) red[i] = drl[i];
    {
      struct rusage ru {};
      getrusage(RUSAGE_SELF, &ru);
      const size_t me = nblocks + size_t(world_->rank()) * kPer;
      const double total = std::max(tForward + tFeedback + tSync + tUpdate, 1e-9);
      red[me] = tSync / total;
      red[me + 1] = tFeedback / double(std::max<int64_t>(1, steps));
      red[me + 2] = tSync / double(std::max<int64_t>(1, steps));
      red[me + 3] = double(ru.ru_maxrss) / 1024.0;
    }
    world_->allReduceValues(red, ReduceOp::kSum);
    const double samples = double(progress_.batch - startBatch) * double(cfg_.train.batchSize);
    const double n = double(std::max<int64_t>(1, steps));
    MetricsRecord tr{.epoch = epoch, .step = progress_.step, .split = "train",
                     .loss = progress_.seen ? progress_.lossSum / double(progress_.seen) : 0,
                     .acc = progress_.seen ? double(progress_.correct) / double(progress_.seen) : 0,
                     .samplesPerSec = samples / std::max(epochSec, 1e-9), .wallSec = wall(),
                     .extra = {{"lr", lr_->at(epoch, std::max<int64_t>(0, progress_.batch - 1), nb)}}};
    for (size_t i = 0; i < nblocks; ++i) tr.extra.push_back({"local_loss_L" + std::to_string(i), local[i] / n});
    for (size_t i = 1; i < nblocks; ++i) tr.extra.push_back({"drl_loss_G" + std::to_string(i), red[i] / n});
    for (size_t i = 1; i < nblocks; ++i)
      tr.extra.push_back({"angle_G" + std::to_string(i), dtp::feedbackAngle(g_->block(int(i)), *model_, int(i))});
    tr.extra.push_back({"forward_s_per_step", tForward / n});
    tr.extra.push_back({"update_s_per_step", tUpdate / n});
    double idleMax = 0, idleMean = 0, rssMax = 0;
    for (int r = 0; r < P; ++r) {
      const size_t k = nblocks + size_t(r) * kPer;
      idleMax = std::max(idleMax, red[k]);
      idleMean += red[k] / P;
      rssMax = std::max(rssMax, red[k + 3]);
      if (P <= 16) {
        tr.extra.push_back({"feedback_s_per_step_rank" + std::to_string(r), red[k + 1]});
        if (P > 1) {
          tr.extra.push_back({"idle_rank" + std::to_string(r), red[k]});
          tr.extra.push_back({"wait_ms_per_step_rank" + std::to_string(r), 1e3 * red[k + 2]});
          tr.extra.push_back({"peak_rss_mb_rank" + std::to_string(r), red[k + 3]});
        }
      }
    }
    tr.extra.push_back({"idle_mean", idleMean});
    tr.extra.push_back({"idle_max", idleMax});
    tr.extra.push_back({"peak_rss_mb_max", rssMax});
    tr.extra.push_back({"resyncs", double(resyncs_)});
    if (leader) metrics_->write(tr);
    const auto tv = Clock::now();
    last = evaluate(data_.test);
    MetricsRecord te2{.epoch = epoch, .step = progress_.step, .split = "test", .loss = last.loss, .acc = last.acc,
                      .samplesPerSec = double(last.samples) / std::max(secondsSince(tv), 1e-9), .wallSec = wall()};
    if (leader) {
      metrics_->write(te2);
      std::ostringstream angles;
      for (size_t i = 1; i < nblocks; ++i)
        angles << (i > 1 ? "," : "") << std::fixed << std::setprecision(0)
               << dtp::feedbackAngle(g_->block(int(i)), *model_, int(i));
      SW_INFO("epoch " << epoch + 1 << "/" << cfg_.train.epochs << ": train loss " << std::fixed << std::setprecision(4)
                       << tr.loss << " acc " << std::setprecision(2) << 100 * tr.acc << "% | test loss "
                       << std::setprecision(4) << last.loss << " acc " << std::setprecision(2) << 100 * last.acc
                       << "% | " << std::setprecision(0) << tr.samplesPerSec << " samples/s, epoch " << std::setprecision(1)
                       << epochSec << "s | angle(G,F^T) deg " << angles.str());
    }
    progress_.epoch = epoch + 1;
    progress_.batch = 0;
    progress_.lossSum = 0;
    progress_.correct = progress_.seen = 0;
    progress_.wallSeconds = wall();
    const bool lastEpoch = epoch + 1 == cfg_.train.epochs || done;
    if (lastEpoch || (cfg_.checkpoint.everyEpochs > 0 && (epoch + 1) % cfg_.checkpoint.everyEpochs == 0)) checkpoint();
  }
  return last;
}

}  // namespace sw
