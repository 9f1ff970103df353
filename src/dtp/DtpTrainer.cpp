// The DTP training loop. Determinism: initialisation, shuffling and augmentation derive from
// train.seed exactly as for the other algorithms, every rank loads the same batch (shard 0 of 1),
// and L-DRL noise is keyed on (seed, step, block, iteration), so a checkpoint needs no RNG state
// and sequential and layer-parallel runs draw the same noise.
#include "dtp/DtpTrainer.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <sstream>

#include "coord/Coordinator.h"
#include "core/Error.h"
#include "core/Log.h"
#include "dtp/DtpCheckpoint.h"
#include "schedule/TrainingComm.h"

namespace fs = std::filesystem;

namespace sw {
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
  // Collective: feedback weights of a device backend are broadcast through the device-aware world.
  deviceWorld_ = makeTrainingWorld(*world_, *be_, cfg_.runtime.ncclP2p);
  if (deviceWorld_) engine_->setTensorCommunicator(*deviceWorld_);
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

EvalResult DtpTrainer::run(const std::atomic<bool>* stop) {
  if (!engine_) prepare();
  const bool leader = world_->rank() == 0;
  const int P = world_->size();
  if (leader) metrics_ = openRunDirectory(cfg_, outDir_, !resumeDir_.empty(), progress_.metricsBytes);
  ckpt_ = std::make_unique<CheckpointStore>(outDir_);
  const int64_t nb = loader_->batchesPerEpoch();
  const size_t nblocks = size_t(g_->numBlocks());
  if (leader)
    SW_INFO("model " << cfg_.model.name << ": " << model_->numParams() << " parameters, " << data_.train.size()
                     << " training samples, " << nb << " batches/epoch, " << be_->name() << " backend, algo "
                     << cfg_.train.algo << " on " << P << (P == 1 ? " rank" : " ranks"));
  // Identical initialisation on every rank is by construction (same seed); verify it once.
  resyncs_ += engine_->checkAndResync() ? 1 : 0;
  // Per-epoch sums on this rank: local losses, L-DRL losses (owned blocks), phase seconds.
  std::vector<double> local, drl, bpAngle, bpNorm;
  int64_t bpAngleN = 0;
  // The probe changes nothing, so only the rank that records the metrics pays for it.
  engine_->setBpAngleEvery(leader ? cfg_.dtp.bpAngleEvery : 0);
  double tForward = 0, tFeedback = 0, tSync = 0, tUpdate = 0;
  int64_t steps = 0;
  Batch batch;
  EpochLoop loop(cfg_, *world_, progress_, metrics_.get(), *lr_, nb);
  EpochHooks h;
  h.epochBegin = [&](int epoch) {
    loader_->seek(epoch, progress_.batch);
    local.assign(nblocks, 0.0);
    drl.assign(nblocks, 0.0);
    bpAngle.assign(nblocks, 0.0);
    bpNorm.assign(nblocks, 0.0);
    bpAngleN = 0;
    tForward = tFeedback = tSync = tUpdate = 0;
    steps = 0;
  };
  h.round = [&](int epoch, bool stopRequested) {
    if (!loader_->next(batch)) throw Error("data loader ended early in epoch " + std::to_string(epoch));
    const float lr = lr_->at(epoch, progress_.batch, nb);
    const dtp::StepStats st = engine_->step(batch, progress_.step, lr);
    for (size_t i = 0; i < nblocks; ++i) {
      local[i] += st.localLoss[i];
      drl[i] += st.drlLoss[i];
    }
    if (!st.bp.angle.empty()) {
      for (size_t i = 0; i < nblocks; ++i) {
        bpAngle[i] += st.bp.angle[i];
        bpNorm[i] += st.bp.normRatio[i];
      }
      ++bpAngleN;
    }
    tForward += st.forward;
    tFeedback += st.feedback;
    tSync += st.sync;
    tUpdate += st.update;
    ++steps;
    // Every rank computed the same logits: count them once (rank 0), OR the stop flags.
    return RoundResult{.batches = 1, .updates = 1,
                       .totals = roundEnd(*world_, leader ? st.ce * double(st.seen) : 0.0, leader ? st.correct : 0,
                                          leader ? st.seen : 0, stopRequested)};
  };
  h.afterRound = [&] {
    if (cfg_.dtp.checkSyncEvery > 0 && progress_.step % cfg_.dtp.checkSyncEvery == 0)
      resyncs_ += engine_->checkAndResync() ? 1 : 0;
  };
  h.epochEnd = [&](int) { resyncs_ += engine_->checkAndResync() ? 1 : 0; };
  h.checkpoint = [&] { checkpoint(); };
  h.evaluate = [&](int) { return evaluate(data_.test); };
  // The blocked time is the wait in the feedback broadcasts.
  h.waits = [&] {
    const double total = std::max(tForward + tFeedback + tSync + tUpdate, 1e-9);
    return std::pair{tSync / total, 1e3 * tSync / double(std::max<int64_t>(1, steps))};
  };
  h.rankValues = [&] {
    return std::vector<RankValue>{
        {.name = "feedback_s_per_step", .value = tFeedback / double(std::max<int64_t>(1, steps)), .always = true}};
  };
  h.sums = [&] { return drl; };  // L-DRL losses live on the blocks' owners
  h.trainExtras = [&](int, const std::vector<double>& drlSum, MetricsRecord& tr) {
    const double n = double(std::max<int64_t>(1, steps));
    for (size_t i = 0; i < nblocks; ++i) tr.extra.push_back({"local_loss_L" + std::to_string(i), local[i] / n});
    for (size_t i = 1; i < nblocks; ++i) tr.extra.push_back({"drl_loss_G" + std::to_string(i), drlSum[i] / n});
    for (size_t i = 1; i < nblocks; ++i)
      tr.extra.push_back({"angle_G" + std::to_string(i), dtp::feedbackAngle(g_->block(int(i)), *model_, int(i))});
    for (size_t i = 1; i < nblocks; ++i)
      tr.extra.push_back(
          {"norm_ratio_G" + std::to_string(i), dtp::feedbackNormRatio(g_->block(int(i)), *model_, int(i))});
    for (size_t i = 0; i < nblocks && bpAngleN > 0; ++i) {
      tr.extra.push_back({"bp_angle_F" + std::to_string(i), bpAngle[i] / double(bpAngleN)});
      tr.extra.push_back({"bp_norm_ratio_F" + std::to_string(i), bpNorm[i] / double(bpAngleN)});
    }
    tr.extra.push_back({"forward_s_per_step", tForward / n});
    tr.extra.push_back({"update_s_per_step", tUpdate / n});
    tr.extra.push_back({"resyncs", double(resyncs_)});
  };
  h.epochNote = [&](int) {
    std::ostringstream angles;
    // Values i = first..nblocks-1 of f(i), comma-separated, with `digits` decimals.
    auto list = [&](const char* label, size_t first, int digits, const std::function<double(size_t)>& f) {
      angles << label;
      for (size_t i = first; i < nblocks; ++i)
        angles << (i > first ? "," : "") << std::fixed << std::setprecision(digits) << f(i);
    };
    list(" | angle(G,F^T) deg ", 1, 0, [&](size_t i) { return dtp::feedbackAngle(g_->block(int(i)), *model_, int(i)); });
    if (bpAngleN > 0) {
      list(" | angle(dtp,bp) deg ", 0, 0, [&](size_t i) { return bpAngle[i] / double(bpAngleN); });
      list(" | |dtp|/|beta bp| ", 0, 2, [&](size_t i) { return bpNorm[i] / double(bpAngleN); });
    }
    list(" | |G|/|F| ", 1, 2, [&](size_t i) { return dtp::feedbackNormRatio(g_->block(int(i)), *model_, int(i)); });
    return angles.str();
  };
  return loop.run(h, stop, &stoppedBySignal_);
}

}  // namespace sw
