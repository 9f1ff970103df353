// The single-process training loop. Determinism: initialisation, shuffling, augmentation and
// dropout all derive from train.seed; the learning rate is a pure function of (epoch, batch);
// checkpoints hold parameters, optimizer state, BN statistics, the dropout generator, the data
// position and partial-epoch sums, so a stopped-and-resumed run ends bit-identical.
#include "train/Trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "core/Error.h"
#include "core/Log.h"

namespace fs = std::filesystem;

namespace sw {
namespace {
using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
std::string fmtTime(double s) {
  std::ostringstream os;
  if (s >= 3600) os << int(s / 3600) << "h" << std::setw(2) << std::setfill('0') << int(s / 60) % 60 << "m";
  else if (s >= 60) os << int(s / 60) << "m" << std::setw(2) << std::setfill('0') << int(s) % 60 << "s";
  else os << std::fixed << std::setprecision(1) << s << "s";
  return os.str();
}
}  // namespace

Trainer::Trainer(TrainConfig cfg, std::string outDir, std::string resumeDir)
    : cfg_(std::move(cfg)), outDir_(std::move(outDir)), resumeDir_(std::move(resumeDir)) {}

Trainer::~Trainer() = default;

void Trainer::prepare() {
  if (cfg_.train.algo != "bp")
    throw ConfigError("train.algo = " + cfg_.train.algo +
                      " needs the distributed runtime; this build's single-process trainer runs 'bp'");
  be_ = makeBackend(cfg_.runtime);
  data_ = loadData(cfg_.data);
  if (data_.train.classes != data_.test.classes)
    throw DataError("train and test splits disagree on the class count (" +
                    std::to_string(data_.train.classes) + " vs " + std::to_string(data_.test.classes) + ")");
  loader_ = std::make_unique<BatchLoader>(data_.train, cfg_.train.batchSize, cfg_.train.seed, Shard{},
                                          cfg_.augment, Shuffle::kYes, DropLast::kNo, Augment::kYes);
  if (loader_->batchesPerEpoch() == 0)
    throw DataError(data_.train.source + ": no training batch (data set smaller than one batch?)");
  const Shape sample = loader_->sampleShape();
  model_ = buildModel(*be_, cfg_.model, sample, data_.train.classes, cfg_.train.seed);
  opt_ = std::make_unique<Optimizer>(*be_, model_->params(), cfg_.optim);
  sched_ = std::make_unique<LrSchedule>(cfg_.lr);
  loss_ = std::make_unique<SoftmaxCrossEntropy>(*be_);
  if (!resumeDir_.empty()) {
    CheckpointStore store(resumeDir_);
    auto latest = store.latest();
    if (!latest) throw InputError(resumeDir_ + ": no committed checkpoint to resume from");
    resumeStepDir_ = *latest;
    resumeFrom(resumeStepDir_);
  }
}

void Trainer::resumeFrom(const std::string& stepDir) {
  CheckpointStore store(resumeDir_);
  Rng::State rs;
  ShardMeta meta;
  store.readShard(stepDir, 0, *model_, *opt_, progress_, rs, &meta);
  if (meta.model != cfg_.model.name)
    throw InputError(stepDir + ": checkpoint is of model '" + meta.model + "', config says '" +
                     cfg_.model.name + "'");
  model_->dropoutRng().setState(rs);
}

float Trainer::trainBatch(const Batch& b, float lr) {
  Tensor x = be_->fromHost(b.x), y = be_->fromHost(b.labels);
  Ctx slot;
  Tensor logits = model_->forward(x, slot, Mode::kTrain);
  Ctx lctx;
  LossResult r = loss_->forward(logits, y, lctx);
  if (!std::isfinite(r.loss))
    throw NumericError("non-finite training loss " + std::to_string(r.loss) + " at epoch " +
                       std::to_string(progress_.epoch) + " batch " + std::to_string(progress_.batch) +
                       " (lower optim.lr?)");
  Tensor d = loss_->backward(lctx);
  model_->backward(d, slot, {}, InputGrad::kSkip);
  progress_.correct += r.correct;
  progress_.seen += b.size();
  progress_.lossSum += r.loss;
  if (++progress_.microbatches == cfg_.train.accumSteps) {
    const float scale = cfg_.train.accumAverage ? 1.f / float(cfg_.train.accumSteps) : 1.f;
    opt_->step(lr, scale);
    model_->zeroGrad();
    progress_.microbatches = 0;
    ++progress_.step;
  }
  return r.loss;
}

EvalResult Trainer::evaluate(const Dataset& d) {
  BatchLoader ev(d, cfg_.train.evalBatchSize, cfg_.train.seed, Shard{}, cfg_.augment, Shuffle::kNo,
                 DropLast::kNo, Augment::kNo);
  ev.seek(0, 0);
  Batch b;
  double lossSum = 0;
  int64_t correct = 0, n = 0;
  while (ev.next(b)) {
    Tensor x = be_->fromHost(b.x), y = be_->fromHost(b.labels);
    Ctx slot, lctx;
    Tensor logits = model_->forward(x, slot, Mode::kEval);
    LossResult r = loss_->forward(logits, y, lctx);
    lossSum += double(r.loss) * b.size();
    correct += r.correct;
    n += b.size();
  }
  EvalResult e;
  e.samples = n;
  e.loss = n ? lossSum / n : 0;
  e.acc = n ? double(correct) / n : 0;
  return e;
}

void Trainer::checkpoint() {
  if (!ckpt_) return;
  progress_.metricsBytes = metrics_->bytes();
  ShardMeta meta{.algo = cfg_.train.algo, .model = cfg_.model.name, .rank = 0, .world = 1,
                 .configText = cfg_.iniText()};
  ckpt_->writeShard(progress_.step, meta, *model_, *opt_, progress_, model_->dropoutRng().state());
  ckpt_->commit(progress_.step, 1, cfg_.checkpoint.keep);
}

EvalResult Trainer::run(const std::atomic<bool>* stop) {
  if (!model_) prepare();
  fs::create_directories(outDir_);
  {
    // The resolved config goes in the run directory; resume reads it back.
    std::ofstream c(outDir_ + "/config.ini");
    c << "# resolved stagewise config\n" << cfg_.iniText();
  }
  metrics_ = std::make_unique<MetricsLog>(outDir_ + "/metrics.jsonl",
                                          resumeDir_.empty() ? -1 : progress_.metricsBytes);
  ckpt_ = std::make_unique<CheckpointStore>(outDir_);
  const bool tty = isatty(STDERR_FILENO);
  const int64_t nb = loader_->batchesPerEpoch();
  const auto t0 = Clock::now();
  const double wall0 = progress_.wallSeconds;
  auto wall = [&] { return wall0 + secondsSince(t0); };
  SW_INFO("model " << cfg_.model.name << ": " << model_->numParams() << " parameters, "
                   << data_.train.size() << " training samples, " << nb << " batches/epoch, "
                   << be_->name() << " backend");
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
    Batch b;
    while (loader_->next(b)) {
      const float lr = sched_->at(epoch, progress_.batch, nb);
      trainBatch(b, lr);
      ++progress_.batch;
      const bool stepDone = progress_.microbatches == 0;
      if (stepDone && cfg_.checkpoint.everySteps > 0 && progress_.step % cfg_.checkpoint.everySteps == 0)
        checkpoint();
      const double el = secondsSince(te);
      if (tty ? secondsSince(lastLog) > 0.5 : secondsSince(lastLog) > cfg_.train.logEverySeconds) {
        lastLog = Clock::now();
        const double rate = double(progress_.batch - startBatch) * cfg_.train.batchSize / std::max(el, 1e-9);
        const double eta = double(nb - progress_.batch) * cfg_.train.batchSize / std::max(rate, 1e-9);
        std::ostringstream os;
        os << "epoch " << epoch + 1 << "/" << cfg_.train.epochs << " [" << progress_.batch << "/" << nb
           << "] loss " << std::fixed << std::setprecision(4) << progress_.lossSum / progress_.batch
           << " acc " << std::setprecision(1) << 100.0 * progress_.correct / std::max<int64_t>(1, progress_.seen)
           << "% " << std::setprecision(0) << rate << " samples/s ETA " << fmtTime(eta);
        if (tty) std::fprintf(stderr, "\r%s   ", os.str().c_str());
        else SW_INFO(os.str());
      }
      const bool stepLimit = stepDone && cfg_.train.maxSteps > 0 && progress_.step >= cfg_.train.maxSteps;
      if (stepLimit && progress_.batch == nb) {
        done = true;  // the limit falls on the epoch's end: finish the epoch normally
        break;
      }
      if (stepLimit) {
        // Mid-epoch stop: checkpoint the exact position so a resumed run continues seamlessly.
        if (tty) std::fprintf(stderr, "\n");
        SW_INFO("train.max_steps = " << cfg_.train.maxSteps << " reached at epoch " << epoch + 1
                                     << " batch " << progress_.batch);
        progress_.wallSeconds = wall();
        checkpoint();
        return evaluate(data_.test);
      }
      if (stop && stop->load()) {
        if (tty) std::fprintf(stderr, "\n");
        SW_INFO("stop requested: checkpointing at step " << progress_.step << " and exiting");
        progress_.wallSeconds = wall();
        checkpoint();
        stoppedBySignal_ = true;
        return last;
      }
    }
    if (tty) std::fprintf(stderr, "\n");
    const double epochSec = secondsSince(te);
    const int64_t batches = progress_.batch;
    MetricsRecord tr{.epoch = epoch, .step = progress_.step, .split = "train",
                     .loss = batches ? progress_.lossSum / batches : 0,
                     .acc = progress_.seen ? double(progress_.correct) / progress_.seen : 0,
                     .samplesPerSec = double(progress_.batch - startBatch) * cfg_.train.batchSize / std::max(epochSec, 1e-9),
                     .wallSec = wall(),
                     .extra = {{"lr", sched_->at(epoch, std::max<int64_t>(0, progress_.batch - 1), nb)}}};
    metrics_->write(tr);
    const auto tv = Clock::now();
    last = evaluate(data_.test);
    MetricsRecord te2{.epoch = epoch, .step = progress_.step, .split = "test", .loss = last.loss,
                      .acc = last.acc, .samplesPerSec = last.samples / std::max(secondsSince(tv), 1e-9),
                      .wallSec = wall()};
    metrics_->write(te2);
    SW_INFO("epoch " << epoch + 1 << "/" << cfg_.train.epochs << ": train loss " << std::fixed
                     << std::setprecision(4) << tr.loss << " acc " << std::setprecision(2) << 100 * tr.acc
                     << "% | test loss " << std::setprecision(4) << last.loss << " acc "
                     << std::setprecision(2) << 100 * last.acc << "% | " << std::setprecision(0)
                     << tr.samplesPerSec << " samples/s, epoch " << fmtTime(epochSec));
    progress_.epoch = epoch + 1;
    progress_.batch = 0;
    progress_.lossSum = 0;
    progress_.correct = progress_.seen = 0;
    progress_.wallSeconds = wall();
    const bool lastEpoch = epoch + 1 == cfg_.train.epochs || done;
    if (lastEpoch || (cfg_.checkpoint.everyEpochs > 0 && (epoch + 1) % cfg_.checkpoint.everyEpochs == 0))
      checkpoint();
  }
  return last;
}

}  // namespace sw
