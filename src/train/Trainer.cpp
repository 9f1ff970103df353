// The training loop of one rank. Determinism: initialisation, shuffling, augmentation and
// dropout derive from train.seed; the learning rate is a pure function of (epoch, batch); every
// rank builds the same full model from the seed and keeps its stage's blocks. Rounds end
// drained, so a checkpoint (per-rank shards + a commit marker) captures everything needed to
// continue bit-identically: parameters, optimizer state, BN statistics, dropout generator, data
// position, partial-epoch sums and the algorithm's own state.
#include "train/Trainer.h"

#include <sstream>

#include "algo/Registry.h"
#include "comm/DeviceComm.h"
#include "coord/CheckpointAgreement.h"
#include "coord/Coordinator.h"
#include "core/Allocator.h"
#include "core/Error.h"
#include "core/Log.h"
#include "nn/Partition.h"
#include "train/EpochLoop.h"
#include "train/Feeds.h"

namespace sw {

Trainer::Trainer(TrainConfig cfg, std::string outDir, std::string resumeDir, Communicator* world)
    : cfg_(std::move(cfg)), outDir_(std::move(outDir)), resumeDir_(std::move(resumeDir)), world_(world) {
  if (!world_) {
    self_ = makeSelfCommunicator();
    world_ = self_.get();
  }
}

Trainer::~Trainer() = default;

void Trainer::setup() {
  // The algorithm and the rank count against its topology first: before any data is read.
  algo_ = makeAlgorithm(cfg_);
  spec_ = algo_->plan(world_->size());
  coord_ = Topology(world_->size(), spec_.stages).coord(world_->rank());
  loaderPlan_ = algo_->loader(coord_);
  be_ = makeBackend(cfg_.runtime);
  dataSplits_ = loadData(cfg_.data);
  if (dataSplits_.train.classes != dataSplits_.test.classes)
    throw DataError("train and test splits disagree on the class count (" + std::to_string(dataSplits_.train.classes) +
                    " vs " + std::to_string(dataSplits_.test.classes) + ")");
  const DropLast drop = cfg_.pipe.microbatches > 1 ? DropLast::kYes : DropLast::kNo;
  loader_ = std::make_unique<BatchLoader>(dataSplits_.train, loaderPlan_.batch, loaderPlan_.seed, loaderPlan_.shard,
                                          cfg_.augment, Shuffle::kYes, drop, Augment::kYes, loaderPlan_.global);
  if (loader_->batchesPerEpoch() == 0)
    throw DataError(dataSplits_.train.source + ": no training batch (data set smaller than one batch?)");
  model_ = buildModel(*be_, cfg_.model, loader_->sampleShape(), dataSplits_.train.classes,
                      algo_->modelSeed(coord_.replica));
  // Replicas draw different dropout masks; replica 0 keeps the single-process stream.
  if (coord_.replica > 0 && !algo_->mirrorsReplicas())
    model_->dropoutRng() = Rng::derive(cfg_.train.seed, 1000 + uint64_t(coord_.replica));
  if (size_t(spec_.stages) > model_->numBlocks()) {
    // One stage per rank is the default of the pipelines; a model with fewer blocks than ranks
    // runs the deepest pipeline it can cut, replicated (e.g. 3 blocks on 4 ranks: 2 stages x 2
    // replicas). An explicit pipe.stages is the user's word.
    const int world = world_->size(), nb = int(model_->numBlocks());
    if (cfg_.pipe.stages == 0)
      for (int d = std::min(nb, world); d >= 1; --d) {
        if (world % d != 0) continue;
        TrainConfig c = cfg_;
        c.pipe.stages = d;
        try {
          (void)makeAlgorithm(c)->plan(world);
        } catch (const ConfigError&) {
          continue;  // this algorithm does not take that shape
        }
        if (world_->rank() == 0)
          SW_INFO("model " << cfg_.model.name << " has " << nb << " blocks, fewer than the " << world
                           << " ranks: running " << d << " stage(s) x " << world / d << " replica(s) (set pipe.stages "
                           << "to choose)");
        cfg_ = c;
        setup();
        return;
      }
    throw ConfigError("pipe.stages = " + std::to_string(spec_.stages) + " but model " + cfg_.model.name + " has " +
                      std::to_string(nb) + " blocks (a stage needs at least one)");
  }
  algo_->checkModel(*model_, spec_);
  if (spec_.stages > 1 && !algo_->partition().empty())
    partitionExplicit(algo_->partition(), model_->numBlocks(), spec_.stages, "pipe.partition");
}

void Trainer::prepare() {
  agree(*world_, [&] { setup(); });
  // Communicators and the stage partition (collectives, identical on every rank). On a device
  // backend, activations, gradients and buckets cross ranks through the device-aware world.
  deviceWorld_ = makeDeviceWorld(*world_, *be_, cfg_.runtime.ncclP2p);
  Communicator& tensorWorld = deviceWorld_ ? *deviceWorld_ : *world_;
  pipe_ = tensorWorld.split(coord_.replica, coord_.stage, "pipe[replica " + std::to_string(coord_.replica) + "]");
  data_ = tensorWorld.split(coord_.stage, coord_.replica, "data[stage " + std::to_string(coord_.stage) + "]");
  choosePartition();
  ExecutorOptions eo{.bucketBytes = size_t(cfg_.dp.bucketMb * (1 << 20))};
  eo.jitterMicros = cfg_.runtime.jitterUs;
  eo.jitterSeed = uint64_t(world_->rank());
  AlgoEnv env{.world = world_, .tensorWorld = &tensorWorld, .pipe = pipe_.get(), .data = data_.get(), .be = be_.get(),
              .model = model_.get(), .coord = coord_, .spec = &spec_, .parts = &parts_, .range = range_, .exec = &eo,
              .train = &dataSplits_.train, .microBatchRows = loaderPlan_.batch / cfg_.pipe.microbatches,
              .batchesPerEpoch = loader_->batchesPerEpoch()};
  agree(*world_, [&] {
    algo_->completeSpec(spec_, *model_, parts_);
    algo_->attach(env);
  });  // before the optimizer: aux heads join the stage
  opt_ = std::make_unique<Optimizer>(*be_, model_->params(range_), cfg_.optim);
  lr_ = std::make_unique<LrSchedule>(cfg_.lr);
  loss_ = std::make_unique<SoftmaxCrossEntropy>(*be_);
  env.opt = opt_.get();
  algo_->bind(env);
  const StageContext sc{.be = be_.get(), .model = model_.get(), .range = range_, .opt = opt_.get(),
                        .loss = loss_.get(), .coord = coord_, .pipe = pipe_.get(), .data = data_.get()};
  exec_ = std::make_unique<Executor>(sc, eo, algo_.get());
  // Phase 2: the checkpoint to resume from (each rank reads its own shard).
  if (!resumeDir_.empty()) resume();
}

void Trainer::choosePartition() {
  // Measured costs differ between ranks: every rank must pick the same cut.
  // The same rows on every rank (an uneven split gives replicas different batches).
  const int64_t rows = loaderPlan_.global > 0 ? loaderPlan_.global / loaderPlan_.shard.count : loaderPlan_.batch;
  parts_ = sw::choosePartition(*model_, spec_.stages, algo_->partition(), "pipe.partition", cfg_.pipe.balance,
                               std::max<int64_t>(1, rows / cfg_.pipe.microbatches),
                               [&](std::vector<double>& c) { world_->allReduceValues(c, ReduceOp::kAvg); });
  range_ = parts_[size_t(coord_.stage)];
  if (world_->rank() == 0 && spec_.stages > 1) {
    std::ostringstream os;
    for (int s = 0; s < spec_.stages; ++s)
      os << (s ? ", " : "") << "stage " << s << " = blocks " << parts_[s].begin << ".." << parts_[s].end - 1;
    SW_INFO("partition: " << os.str());
  }
}

// ", batch 64 split 22/21/21 over 3 replicas" when the split is uneven (the gradients are then
// averaged by sample count), and the same for micro-batches; "" otherwise.
std::string Trainer::splitNote() const {
  std::ostringstream os;
  const int64_t g = loaderPlan_.global, n = loaderPlan_.shard.count, M = cfg_.pipe.microbatches;
  if (g > 0 && n > 1 && g % n != 0) {
    os << ", batch " << g << " split ";
    for (int64_t r = 0; r < n; ++r) os << (r ? "/" : "") << g / n + (r < g % n ? 1 : 0);
    os << " over " << n << " replicas" << (loaderPlan_.averaged ? " (gradients weighted by samples)" : "");
  }
  const int64_t b = loaderPlan_.batch;
  if (M > 1 && b % M != 0) os << ", " << b << " samples in " << M << " micro-batches of " << b / M << "-" << b / M + 1;
  return os.str();
}

void Trainer::resumeFrom(const std::string& stepDir) {
  const ResumeSource src = resumeSource(stepDir, coord_.rank, world_->size(), spec_.stages, spec_.replicas,
                                        coord_.replica, parts_, model_->numBlocks());
  Rng::State rs;
  ShardMeta meta;
  std::vector<std::string> fresh;
  CheckpointStore store(resumeDir_);
  if (src.sameShape)
    store.readShard(stepDir, coord_.rank, *model_, range_, *opt_, progress_, rs, &meta);
  else
    store.readResharded(src, *model_, range_, *opt_, progress_, rs, &meta, &fresh);
  expectShardOf(meta, {.algo = writtenBy_.empty() ? cfg_.train.algo : writtenBy_, .model = cfg_.model.name,
                       .world = src.manifest.world},
                stepDir);
  // A replica the writing job did not have keeps its own dropout stream (replicas differ).
  if (src.sameShape || coord_.replica < src.manifest.replicas || algo_->mirrorsReplicas())
    model_->dropoutRng().setState(rs);
  algo_->load(src);
  if (!src.sameShape && progress_.batch >= loader_->batchesPerEpoch()) {
    // Another shape may cut the epoch into fewer batches: a position past its end starts the next.
    progress_.batch = 0;
    ++progress_.epoch;
  }
  if (progress_.epoch >= cfg_.train.epochs && !evalOnly_)
    throw InputError(stepDir + ": the run already finished " + std::to_string(progress_.epoch) +
                     " epochs and train.epochs = " + std::to_string(cfg_.train.epochs) +
                     "; raise train.epochs to train further");
  if (!src.sameShape) {
    if (coord_.rank == 0)
      SW_INFO("resharding: checkpoint written by " << src.describe() << "; this job runs "
                                                   << Topology(world_->size(), spec_.stages).str());
    if (!fresh.empty())
      SW_INFO("rank " << coord_.rank << ": " << fresh.size() << " auxiliary-head parameter(s) at a new cut start from "
                      << "their initial values (first: " << fresh.front() << ")");
  }
}

const Program& Trainer::program(int microbatches, Phase phase) {
  auto key = std::make_pair(microbatches, int(phase));
  auto it = programs_.find(key);
  if (it != programs_.end()) return it->second;
  ScheduleSpec s = spec_;
  s.microbatches = microbatches;
  s.phase = phase;
  algo_->roundShape(s, microbatches / cfg_.pipe.microbatches);
  Program p = phase == Phase::kEval ? buildEvalProgram(coord_.stage, s) : algo_->build(coord_, s);
  return programs_.emplace(key, std::move(p)).first->second;
}

RoundStats Trainer::runRound(int epoch, int64_t firstBatch, int batches) {
  const int M = cfg_.pipe.microbatches;
  TrainFeed feed(*loader_, M, loaderPlan_.batch, firstBatch, loaderPlan_.averaged ? loaderPlan_.shard.count : 1);
  RoundInputs ri;
  ri.step = progress_.step;
  feed.into(ri);
  algo_->rates({.epoch = epoch, .firstBatch = firstBatch, .batches = batches,
                .batchesPerEpoch = loader_->batchesPerEpoch(), .lr = lr_.get()},
               ri);
  return exec_->run(program(batches * M, Phase::kTrain), ri);
}

EvalResult Trainer::evaluate(const Dataset& d) {
  // The replicas take the batches of the whole set round robin, so every sample counts once
  // whatever the rank count (a set that does not divide by the replicas included).
  EvalFeed feed(d, cfg_.train.evalBatchSize, Shard{0, 1}, spec_.replicas, coord_.replica, cfg_.augment,
                cfg_.train.seed);
  RoundInputs ri;
  feed.into(ri);
  RoundStats st;
  if (feed.batches() > 0) st = exec_->run(program(int(feed.batches()), Phase::kEval), ri);
  std::vector<double> v{st.lossSum, double(st.correct), double(st.seen), double(st.correct5)};
  world_->allReduceValues(v, ReduceOp::kSum);
  return EvalResult{.loss = v[2] > 0 ? v[0] / v[2] : 0, .acc = v[2] > 0 ? v[1] / v[2] : 0, .samples = int64_t(v[2]),
                    .top5 = v[2] > 0 ? v[3] / v[2] : 0};
}

EvalResult Trainer::evaluateTest(int epoch) {
  return algo_->evaluateTest(epoch, *exec_, [&] { return evaluate(dataSplits_.test); });
}

// Every rank writes its files (the algorithm's, then its shard: the manifest implies both); rank
// 0 commits the manifest of all of them (coord/CheckpointAgreement).
void Trainer::checkpoint() {
  if (!ckpt_) return;
  progress_.metricsBytes = metrics_ ? metrics_->bytes() : 0;
  const int64_t step = progress_.step;
  const ShardMeta meta{.algo = cfg_.train.algo, .model = cfg_.model.name, .rank = coord_.rank,
                       .world = world_->size(), .configText = iniText(cfg_),
                       .sample = model_->sampleShape().dims(), .classes = model_->classes()};
  const Manifest m{.format = 2, .step = step, .world = world_->size(), .stages = spec_.stages,
                   .replicas = spec_.replicas, .parts = parts_};
  writeCheckpoint(*world_, *ckpt_, m, coord_.rank, cfg_.checkpoint.keep, [&] {
    algo_->save(ckpt_->stepDir(step), coord_.rank);
    ckpt_->writeShard(step, meta, *model_, range_, *opt_, progress_, model_->dropoutRng().state());
  });
}

// The newest checkpoint that verifies on every rank (damaged ones renamed, unless
// checkpoint.fallback = false), loaded by every rank, which must then hold the same step.
void Trainer::resume() {
  const std::string dir =
      agreeOnCheckpoint(*world_, resumeDir_, coord_.rank, cfg_.checkpoint.fallback && !evalOnly_, resumeStep_);
  agree(*world_, [&] { resumeFrom(dir); });
  std::vector<double> lo{double(progress_.step)}, hi = lo;
  world_->allReduceValues(lo, ReduceOp::kMin);
  world_->allReduceValues(hi, ReduceOp::kMax);
  agree(*world_, [&] {
    if (lo != hi) throw DamagedError(dir + ": the ranks' shards are of different steps");
  });
  if (world_->rank() == 0) SW_INFO("resumed at step " << progress_.step << " from " << dir);
}

void Trainer::fillHooks(EpochHooks& h, RoundStats& epochStats, size_t liveAtStart) {
  const int64_t nb = loader_->batchesPerEpoch();
  const int perRound = algo_->roundBatches(nb);
  h.epochBegin = [&, this](int epoch) {
    loader_->seek(epoch, progress_.batch);
    epochStats = RoundStats{};
    algo_->epochBegin(epoch);
  };
  h.round = [&, this, nb, perRound](int epoch, bool stopRequested) {
    const int batches = int(std::min<int64_t>(perRound, nb - progress_.batch));
    const RoundStats st = runRound(epoch, progress_.batch, batches);
    epochStats.add(st);
    rankStats_.add(st);
    return RoundResult{.batches = batches, .updates = st.updates,
                       .totals = roundEnd(*world_, st.lossSum, st.correct, st.seen, stopRequested)};
  };
  h.afterRound = [this] { algo_->afterRound(progress_.step); };
  h.epochEnd = [this](int epoch) { algo_->epochEnd(epoch); };
  h.checkpoint = [this] { checkpoint(); };
  h.evaluate = [this](int epoch) { return evaluateTest(epoch); };
  // Idle fraction (blocked on a peer or a collective) and blocked milliseconds per step; tensor
  // memory of training above what was live when it started (data set, weights): activations,
  // stashes, gradients, optimizer state, message buffers; state held for later backwards.
  h.waits = [&] {
    return std::pair{epochStats.wait / std::max(epochStats.total, 1e-9),
                     1e3 * epochStats.wait / std::max(1, epochStats.updates)};
  };
  h.rankValues = [&, this, liveAtStart] {
    const size_t peak = HostAllocator::instance().peakLiveBytes();
    std::vector<RankValue> v{
        {.name = "peak_tensor_mb", .value = double(peak - std::min(liveAtStart, peak)) / double(1 << 20), .max = true},
        {.name = "peak_held_mb", .value = double(epochStats.peakHeldBytes) / double(1 << 20)}};
    for (RankValue& r : algo_->rankValues()) v.push_back(r);
    return v;
  };
  h.sums = [this] { return algo_->sums(); };
  h.trainExtras = [this](int, const std::vector<double>& sums, MetricsRecord& tr) { algo_->trainExtras(sums, tr.extra); };
  h.epochNote = [this](int) { return algo_->epochNote(); };
}

EvalResult Trainer::run(const std::atomic<bool>* stop) {
  if (!exec_) prepare();
  const bool leader = world_->rank() == 0;
  if (leader) metrics_ = openRunDirectory(cfg_, outDir_, !resumeDir_.empty(), progress_.metricsBytes);
  ckpt_ = std::make_unique<CheckpointStore>(outDir_);
  const int64_t nb = loader_->batchesPerEpoch();
  const size_t liveAtStart = HostAllocator::instance().liveBytes();
  HostAllocator::instance().resetPeak();
  if (leader) {
    SW_INFO("model " << cfg_.model.name << ": " << model_->numParams() << " parameters, " << dataSplits_.train.size()
                     << " training samples, " << nb << " batches/epoch, " << be_->name() << " backend, algo "
                     << cfg_.train.algo << " on " << Topology(world_->size(), spec_.stages).str()
                     << (spec_.microbatches > 1 ? ", " + std::to_string(spec_.microbatches) + " micro-batches" : "")
                     << splitNote());
    if (!algo_->describe().empty()) SW_INFO(algo_->describe());
  }
  algo_->start();
  EpochLoop loop(cfg_, *world_, progress_, metrics_.get(), *lr_, nb);
  RoundStats epochStats;
  EpochHooks h;
  fillHooks(h, epochStats, liveAtStart);
  return loop.run(h, stop, &stoppedBySignal_);
}

}  // namespace sw
