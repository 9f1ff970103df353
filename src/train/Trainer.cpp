// The training loop of one rank. Determinism: initialisation, shuffling, augmentation and
// dropout derive from train.seed; the learning rate is a pure function of (epoch, batch); every
// rank builds the same full model from the seed and keeps its stage's blocks. Rounds end
// drained, so a checkpoint (per-rank shards + a commit marker) captures everything needed to
// continue bit-identically: parameters, optimizer state, BN statistics, dropout generator, data
// position and partial-epoch sums.
#include "train/Trainer.h"

#include "core/Allocator.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
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
#include "schedule/Schedule.h"
#include "schedule/TrainingComm.h"
#include "train/ParleDriver.h"

namespace fs = std::filesystem;

namespace sw {
namespace {
using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}
// Rows [p*n/M, (p+1)*n/M) of an n-row batch form micro-batch p of M.
int64_t partBegin(int64_t n, int p, int m) { return int64_t(p) * n / m; }
}  // namespace

Trainer::Trainer(TrainConfig cfg, std::string outDir, std::string resumeDir, Communicator* world)
    : cfg_(std::move(cfg)), outDir_(std::move(outDir)), resumeDir_(std::move(resumeDir)), world_(world) {
  if (!world_) {
    self_ = makeSelfCommunicator();
    world_ = self_.get();
  }
}

Trainer::~Trainer() = default;

bool Trainer::delayedPipeline() const { return cfg_.train.algo == "petra" && !cfg_.petra.synchronous; }

void Trainer::setupTopology() {
  // Rank count against the topology first: before any data is read.
  const std::string& algo = cfg_.train.algo;
  const bool isParle = algo == "parle";
  if (isParle) sched_ = parle::makeSchedule(cfg_);
  else if (algo == "petra" && cfg_.petra.synchronous) sched_ = makeSchedule("mp");  // no delay
  else if (algo == "spectrain" && cfg_.spectrain.version == 2) sched_ = makeSchedule("pipedream");
  else sched_ = makeSchedule(algo);
  if ((algo == "spectrain") && cfg_.optim.kind != OptimKind::kSgd)
    throw ConfigError("train.algo = spectrain predicts weights along SGD momentum: optim.name must be sgd");
  if (algo == "petra" && !cfg_.petra.storeContext && !cfg_.petra.storeInput && cfg_.petra.storeParams)
    throw ConfigError("petra.store_params = true with petra.store_input = false (reconstruct the input but "
                      "compute on stashed weights) is not supported: set petra.store_input = true as well");
  const int world = world_->size();
  int stages = cfg_.pipe.stages;
  if (stages == 0) stages = sched_->maxStages() == 1 || isParle ? 1 : world;
  if (sched_->maxStages() > 0 && stages > sched_->maxStages())
    throw ConfigError("train.algo = " + cfg_.train.algo + " runs " + std::to_string(sched_->maxStages()) +
                      " stage per replica, pipe.stages = " + std::to_string(stages));
  if (cfg_.train.algo == "bp" && world != 1)
    throw ConfigError("train.algo = bp runs on one rank but this job has " + std::to_string(world) +
                      " (use train.algo = dp for data parallel)");
  Topology topo(world, stages);
  coord_ = topo.coord(world_->rank());
  spec_.stages = stages;
  spec_.replicas = topo.replicas();
  spec_.microbatches = cfg_.pipe.microbatches;
  spec_.verticalSync = cfg_.pipedream.verticalSync;
  spec_.stash = cfg_.pipedream.stash || algo == "spectrain";
  spec_.spectrainVersion = cfg_.spectrain.version;
  spec_.maxDistance = cfg_.spectrain.maxDistance;
  spec_.accumSteps = cfg_.train.accumSteps;
  spec_.stashParams = cfg_.petra.storeParams || cfg_.petra.storeContext;
  if (isParle) parle::checkTopology(cfg_, spec_.replicas, stages);
  if (interlocking()) {
    spec_.distance = algo == "local" ? 0 : cfg_.interlocking.n - 1;
    spec_.pairwise = parsePairwiseMode(cfg_.interlocking.pairwiseMode);
    spec_.boundedSends = true;
    if (algo == "local" && spec_.pairwise != PairwiseMode::kNextOnly)
      throw ConfigError("interlocking.pairwise_mode = " + cfg_.interlocking.pairwiseMode + " needs train.algo = interlocking with interlocking.n = 2, not train.algo = local");
    InterlockRule{.components = stages, .distance = spec_.distance, .mode = spec_.pairwise}.validate("train.algo = " + algo);
    if (stages == 1 && world != 1)
      throw ConfigError("train.algo = " + algo + " with pipe.stages = 1 runs every component in one process: run it on one rank, or set pipe.stages = " +
                        std::to_string(world) + " for one component per rank");
  }
  if (delayedPipeline()) {
    if (cfg_.pipe.microbatches != 1)
      throw ConfigError("train.algo = petra: a micro-batch is one mini-batch (train.batch_size), "
                        "pipe.microbatches must be 1 (use train.accum_steps to accumulate)");
  } else if (!sched_->flushed() && !isParle && (cfg_.pipe.microbatches != 1 || cfg_.train.accumSteps != 1)) {
    throw ConfigError("train.algo = " + cfg_.train.algo + " updates after every mini-batch: "
                      "pipe.microbatches and train.accum_steps must be 1");
  }
  if (cfg_.train.batchSize % spec_.replicas != 0)
    throw ConfigError("train.batch_size = " + std::to_string(cfg_.train.batchSize) +
                      " is not divisible by the " + std::to_string(spec_.replicas) + " replicas (" + topo.str() + ")");
  replicaBatch_ = cfg_.train.batchSize / spec_.replicas;
  if (replicaBatch_ % cfg_.pipe.microbatches != 0)
    throw ConfigError("train.batch_size = " + std::to_string(cfg_.train.batchSize) + " gives " +
                      std::to_string(replicaBatch_) + " samples per replica, not divisible by pipe.microbatches = " +
                      std::to_string(cfg_.pipe.microbatches));
}

void Trainer::prepare() {
  // Phase 1 (no collectives inside): everything that can be wrong with the input.
  agree(*world_, [&] {
    setupTopology();
    be_ = makeBackend(cfg_.runtime);
    dataSplits_ = loadData(cfg_.data);
    if (dataSplits_.train.classes != dataSplits_.test.classes)
      throw DataError("train and test splits disagree on the class count (" +
                      std::to_string(dataSplits_.train.classes) + " vs " +
                      std::to_string(dataSplits_.test.classes) + ")");
    const DropLast drop = cfg_.pipe.microbatches > 1 ? DropLast::kYes : DropLast::kNo;
    const bool isParle = cfg_.train.algo == "parle";
    const auto [dataSeed, shard] = isParle ? parle::loaderPlan(cfg_, coord_.replica, spec_.replicas)
                                         : std::pair(cfg_.train.seed, Shard{coord_.replica, spec_.replicas});
    loader_ = std::make_unique<BatchLoader>(dataSplits_.train, replicaBatch_, dataSeed, shard, cfg_.augment,
                                            Shuffle::kYes, drop, Augment::kYes);
    if (loader_->batchesPerEpoch() == 0)
      throw DataError(dataSplits_.train.source + ": no training batch (data set smaller than one batch?)");
    model_ = buildModel(*be_, cfg_.model, loader_->sampleShape(), dataSplits_.train.classes,
                        isParle ? parle::modelSeed(cfg_, coord_.replica) : cfg_.train.seed);
    // Replicas draw different dropout masks; replica 0 keeps the single-process stream.
    if (coord_.replica > 0)
      model_->dropoutRng() = Rng::derive(cfg_.train.seed, 1000 + uint64_t(coord_.replica));
    if (size_t(spec_.stages) > model_->numBlocks())
      throw ConfigError("pipe.stages = " + std::to_string(spec_.stages) + " but model " + cfg_.model.name +
                        " has " + std::to_string(model_->numBlocks()) + " blocks");
    if (interlocking()) resolveComponents();
    if (spec_.stages > 1 && !cfg_.pipe.partition.empty())
      partitionExplicit(cfg_.pipe.partition, model_->numBlocks(), spec_.stages, "pipe.partition");
  });
  // Communicators and the stage partition (collectives, identical on every rank). On a device
  // backend, activations, gradients and buckets cross ranks through the device-aware world.
  deviceWorld_ = makeTrainingWorld(*world_, *be_, cfg_.runtime.ncclP2p);
  Communicator& tensorWorld = deviceWorld_ ? *deviceWorld_ : *world_;
  pipe_ = tensorWorld.split(coord_.replica, coord_.stage, "pipe[replica " + std::to_string(coord_.replica) + "]");
  data_ = tensorWorld.split(coord_.stage, coord_.replica, "data[stage " + std::to_string(coord_.stage) + "]");
  choosePartition();
  ExecutorOptions eo{.bucketBytes = size_t(cfg_.dp.bucketMb * (1 << 20))};
  eo.jitterMicros = cfg_.runtime.jitterUs;
  eo.jitterSeed = uint64_t(world_->rank());
  if (interlocking()) agree(*world_, [&] { attachAuxHeads(eo); });  // before the optimizer: it steps them too
  opt_ = std::make_unique<Optimizer>(*be_, model_->params(range_), cfg_.optim);
  lr_ = std::make_unique<LrSchedule>(cfg_.lr);
  loss_ = std::make_unique<SoftmaxCrossEntropy>(*be_);
  StageContext sc{.be = be_.get(), .model = model_.get(), .range = range_, .opt = opt_.get(),
                  .loss = loss_.get(), .coord = coord_, .pipe = pipe_.get(), .data = data_.get()};
  if (cfg_.train.algo == "parle") {
    parle_ = std::make_unique<ParleDriver>(
        cfg_, ParleContext{.be = be_.get(), .model = model_.get(), .range = range_, .inner = opt_.get(),
                           .data = data_.get(), .coord = coord_, .spec = spec_, .train = &dataSplits_.train,
                           .microBatchRows = replicaBatch_ / cfg_.pipe.microbatches,
                           .batchesPerEpoch = loader_->batchesPerEpoch()});
    sc.rule = parle_.get();
  }
  if (cfg_.train.algo == "petra") {
    eo.storage = cfg_.petra.storeContext ? Retain::kContext
                 : cfg_.petra.storeInput ? Retain::kInput
                                         : Retain::kReconstruct;
    // Stage k inverts its top block from what stage k+1 sends back when that block is reversible.
    spec_.reconFrom.assign(size_t(spec_.stages), false);
    // (Synchronous runs use the mp schedule, which sends nothing back: each stage then keeps
    // its top block's input and inverts the reversible blocks below it.)
    if (eo.storage == Retain::kReconstruct && delayedPipeline())
      for (int k = 0; k + 1 < spec_.stages; ++k)
        spec_.reconFrom[size_t(k)] = model_->block(parts_[size_t(k)].end - 1).reversible();
    eo.reconFromNext = spec_.reconFrom[size_t(coord_.stage)];
  }
  if (cfg_.train.algo == "spectrain" && cfg_.spectrain.version == 1) opt_->keepLastGradient(true);
  exec_ = std::make_unique<Executor>(sc, eo);
  // Phase 2: the checkpoint to resume from (each rank reads its own shard).
  if (!resumeDir_.empty()) {
    agree(*world_, [&] {
      CheckpointStore store(resumeDir_);
      auto latest = store.latest();
      if (!latest) throw InputError(resumeDir_ + ": no committed checkpoint to resume from");
      resumeFrom(*latest);
    });
  }
}

void Trainer::choosePartition() {
  const size_t nb = model_->numBlocks();
  if (spec_.stages == 1) {
    range_ = {0, nb};
    parts_ = {StageRange{0, nb}};
    return;
  }
  std::vector<StageRange> parts;
  if (!cfg_.pipe.partition.empty()) {
    parts = partitionExplicit(cfg_.pipe.partition, nb, spec_.stages, "pipe.partition");
  } else {
    const int64_t rows = replicaBatch_ / cfg_.pipe.microbatches;
    std::vector<double> cost(nb, 0);
    if (cfg_.pipe.balance == "macs") {
      for (size_t i = 0; i < nb; ++i) cost[i] = 3 * model_->blockMacs(i, rows);  // fwd + 2x bwd
    } else {
      // Measured forward+backward seconds per block on one micro-batch. Model state touched by
      // the measurement (BN statistics, dropout stream, gradients) is restored afterwards.
      std::vector<Tensor> saved;
      for (Buffer* b : model_->buffers()) saved.push_back(be_->toHost(b->value).clone());
      const Rng::State rs = model_->dropoutRng().state();
      Tensor x;
      for (size_t i = 0; i < nb; ++i) {
        Shape in = i == 0 ? Shape([&] {
          std::vector<int64_t> d{rows};
          for (int64_t v : model_->sampleShape().dims()) d.push_back(v);
          return d;
        }()) : model_->blockOutputShape(i - 1, rows);
        x = be_->empty(in);
        be_->fill(x, 0.5f);
        for (int rep = 0; rep < 3; ++rep) {
          const auto t = Clock::now();
          Ctx ctx;
          Tensor y = model_->forward(x, ctx, Mode::kTrain, {i, i + 1});
          Tensor dy = be_->empty(y.shape());
          be_->fill(dy, 1e-3f);
          model_->backward(dy, ctx, {i, i + 1}, i == 0 ? InputGrad::kSkip : InputGrad::kNeeded);
          be_->synchronize();
          if (rep > 0) cost[i] += secondsSince(t);
        }
      }
      size_t k = 0;
      for (Buffer* b : model_->buffers()) be_->copy(saved[k++], b->value);
      model_->dropoutRng().setState(rs);
      model_->zeroGrad();
      world_->allReduceValues(cost, ReduceOp::kAvg);  // every rank must pick the same cut
    }
    parts = partitionBalanced(cost, spec_.stages);
  }
  parts_ = parts;
  range_ = {parts[coord_.stage].begin, parts[coord_.stage].end};
  if (world_->rank() == 0) {
    std::ostringstream os;
    for (int s = 0; s < spec_.stages; ++s)
      os << (s ? ", " : "") << "stage " << s << " = blocks " << parts[s].begin << ".." << parts[s].end - 1;
    SW_INFO("partition: " << os.str());
  }
}

void Trainer::resumeFrom(const std::string& stepDir) {
  CheckpointStore store(resumeDir_);
  Rng::State rs;
  ShardMeta meta;
  store.readShard(stepDir, coord_.rank, *model_, range_, *opt_, progress_, rs, &meta);
  if (meta.model != cfg_.model.name)
    throw InputError(stepDir + ": checkpoint is of model '" + meta.model + "', config says '" +
                     cfg_.model.name + "'");
  if (meta.world != world_->size())
    throw InputError(stepDir + ": checkpoint was written by " + std::to_string(meta.world) +
                     " ranks, this job has " + std::to_string(world_->size()));
  if (meta.algo != cfg_.train.algo)
    throw InputError(stepDir + ": checkpoint is of train.algo = " + meta.algo + ", config says " + cfg_.train.algo);
  model_->dropoutRng().setState(rs);
  if (parle_) parle_->load(stepDir, coord_.rank);
  if (progress_.epoch >= cfg_.train.epochs)
    throw InputError(stepDir + ": the run already finished " + std::to_string(progress_.epoch) +
                     " epochs and train.epochs = " + std::to_string(cfg_.train.epochs) +
                     "; raise train.epochs to train further");
}

const Program& Trainer::program(int microbatches, Phase phase) {
  auto key = std::make_pair(microbatches, int(phase));
  auto it = programs_.find(key);
  if (it != programs_.end()) return it->second;
  ScheduleSpec s = spec_;
  s.microbatches = microbatches;
  s.phase = phase;
  if (parle_) s.steps = microbatches / cfg_.pipe.microbatches;  // one inner step per mini-batch
  Program p = phase == Phase::kEval ? buildEvalProgram(coord_.stage, s) : sched_->build(coord_.stage, s);
  return programs_.emplace(key, std::move(p)).first->second;
}

RoundStats Trainer::runRound(int epoch, int64_t firstBatch, int batches) {
  if (loop_) return runLoopRound(epoch, firstBatch, batches);
  const int M = cfg_.pipe.microbatches;
  const int64_t nb = loader_->batchesPerEpoch();
  const int64_t shard = loader_->shardSize();
  std::map<int, Batch> fetched;
  int nextBatch = 0;
  RoundInputs ri;
  ri.phase = Phase::kTrain;
  ri.fetch = [&](int mb, Batch& out) {
    const int b = mb / M, p = mb % M;
    while (nextBatch <= b) {
      Batch nbatch;
      if (!loader_->next(nbatch)) throw Error("data loader ended early inside a round");
      fetched[nextBatch++] = std::move(nbatch);
    }
    const Batch& full = fetched.at(b);
    const int64_t n = full.size();
    const int64_t r0 = partBegin(n, p, M), r1 = partBegin(n, p + 1, M);
    out.x = M == 1 ? full.x : full.x.slice(r0, r1);
    out.labels = M == 1 ? full.labels : full.labels.slice(r0, r1);
    if (p == M - 1) fetched.erase(b);
  };
  ri.rows = [&](int mb) {
    const int64_t b = firstBatch + mb / M;
    const int64_t n = std::min(replicaBatch_, shard - b * replicaBatch_);
    return partBegin(n, mb % M + 1, M) - partBegin(n, mb % M, M);
  };
  if (sched_->flushed()) {
    const float lr = lr_->at(epoch, firstBatch + batches - 1, nb);
    ri.lr = [lr](int) { return lr; };
    ri.gradScale = (cfg_.train.accumAverage ? 1.f / float(batches) : 1.f) / float(M);
  } else if (delayedPipeline()) {
    // Step g of the round applies the gradients of mini-batches g k .. g k + k - 1.
    const int k = cfg_.train.accumSteps;
    ri.lr = [this, epoch, firstBatch, nb, k, batches](int g) {
      return lr_->at(epoch, firstBatch + std::min(int64_t(g) * k + k - 1, int64_t(batches) - 1), nb);
    };
    ri.averageByCount = cfg_.train.accumAverage;
  } else {
    // SpecTrain v2 (seed-spectrain.md 2.3): stage k steps (S - k) times as far, re-predicting.
    const float mult = cfg_.train.algo == "spectrain" && cfg_.spectrain.version == 2 ? float(spec_.stages - coord_.stage) : 1.f;
    ri.lr = [this, epoch, firstBatch, nb, mult](int k) { return mult * lr_->at(epoch, firstBatch + k, nb); };
    ri.gradScale = 1.f / float(M);  // one step per mini-batch of M micro-batches (parle)
  }
  return exec_->run(program(batches * M, Phase::kTrain), ri);
}

EvalResult Trainer::evaluate(const Dataset& d) {
  const int64_t eb = cfg_.train.evalBatchSize;
  BatchLoader ev(d, eb, cfg_.train.seed, Shard{coord_.replica, spec_.replicas}, cfg_.augment, Shuffle::kNo,
                 DropLast::kNo, Augment::kNo);
  ev.seek(0, 0);
  const int64_t shard = ev.shardSize();
  RoundInputs ri;
  ri.phase = Phase::kEval;
  ri.fetch = [&](int, Batch& out) {
    if (!ev.next(out)) throw Error("evaluation loader ended early");
  };
  ri.rows = [&](int mb) { return std::min(eb, shard - int64_t(mb) * eb); };
  ri.lr = [](int) { return 0.f; };
  RoundStats st;
  if (ev.batchesPerEpoch() > 0) st = exec_->run(program(int(ev.batchesPerEpoch()), Phase::kEval), ri);
  std::vector<double> v{st.lossSum, double(st.correct), double(st.seen)};
  world_->allReduceValues(v, ReduceOp::kSum);
  EvalResult e;
  e.samples = int64_t(v[2]);
  e.loss = v[2] > 0 ? v[0] / v[2] : 0;
  e.acc = v[2] > 0 ? v[1] / v[2] : 0;
  return e;
}

EvalResult Trainer::evaluateTest(int epoch) {
  if (!parle_) return evaluate(dataSplits_.test);
  EvalResult r;
  parle_->withMaster(*exec_, epoch, [&] { r = evaluate(dataSplits_.test); });
  return r;
}

void Trainer::checkpoint() {
  if (!ckpt_) return;
  progress_.metricsBytes = metrics_ ? metrics_->bytes() : 0;
  ShardMeta meta{.algo = cfg_.train.algo, .model = cfg_.model.name, .rank = coord_.rank,
                 .world = world_->size(), .configText = cfg_.iniText()};
  if (parle_) parle_->save(ckpt_->stepDir(progress_.step), coord_.rank);  // before the shard: see ParleDriver.h
  ckpt_->writeShard(progress_.step, meta, *model_, range_, *opt_, progress_, model_->dropoutRng().state());
  commitCheckpoint(*world_, [&] { ckpt_->commit(progress_.step, world_->size(), cfg_.checkpoint.keep); });
}

EvalResult Trainer::run(const std::atomic<bool>* stop) {
  if (!exec_) prepare();
  const bool leader = world_->rank() == 0;
  if (leader) metrics_ = openRunDirectory(cfg_, outDir_, !resumeDir_.empty(), progress_.metricsBytes);
  ckpt_ = std::make_unique<CheckpointStore>(outDir_);
  const int64_t nb = loader_->batchesPerEpoch();
  const int drain = delayedPipeline() ? cfg_.petra.drainEvery
                    : interlocking()  ? cfg_.interlocking.drainEvery
                                      : cfg_.pipedream.drainEvery;
  const int perRound = sched_->flushed() ? cfg_.train.accumSteps
                       : parle_          ? parle_->roundBatches()
                                         : int(drain > 0 ? std::min<int64_t>(drain, nb) : nb);
  const size_t liveAtStart = HostAllocator::instance().liveBytes();
  HostAllocator::instance().resetPeak();
  if (leader)
    SW_INFO("model " << cfg_.model.name << ": " << model_->numParams() << " parameters, " << dataSplits_.train.size()
                     << " training samples, " << nb << " batches/epoch, " << be_->name() << " backend, algo "
                     << cfg_.train.algo << " on " << Topology(world_->size(), spec_.stages).str()
                     << (spec_.microbatches > 1 ? ", " + std::to_string(spec_.microbatches) + " micro-batches" : ""));
  if (leader && parle_) SW_INFO(parle_->describe());
  EpochLoop loop(cfg_, *world_, progress_, metrics_.get(), *lr_, nb);
  RoundStats epochStats;
  EpochHooks h;
  h.epochBegin = [&](int epoch) {
    loader_->seek(epoch, progress_.batch);
    epochStats = RoundStats{};
  };
  h.round = [&](int epoch, bool stopRequested) {
    const int batches = int(std::min<int64_t>(perRound, nb - progress_.batch));
    const RoundStats st = runRound(epoch, progress_.batch, batches);
    epochStats.add(st);
    rankStats_.add(st);
    return RoundResult{.batches = batches, .updates = st.updates,
                       .totals = roundEnd(*world_, st.lossSum, st.correct, st.seen, stopRequested)};
  };
  h.checkpoint = [&] { checkpoint(); };
  h.evaluate = [&](int epoch) { return evaluateTest(epoch); };
  // Idle fraction (blocked on a peer or a reduction) and blocked milliseconds per step; tensor
  // memory of training above what was live when it started (data set, weights): activations,
  // stashes, gradients, optimizer state, message buffers; state held for later backwards.
  h.waits = [&] {
    return std::pair{epochStats.wait / std::max(epochStats.total, 1e-9),
                     1e3 * epochStats.wait / std::max(1, epochStats.updates)};
  };
  h.rankValues = [&] {
    const size_t peak = HostAllocator::instance().peakLiveBytes();
    return std::vector<RankValue>{
        {.name = "peak_tensor_mb", .value = double(peak - std::min(liveAtStart, peak)) / double(1 << 20), .max = true},
        {.name = "peak_held_mb", .value = double(epochStats.peakHeldBytes) / double(1 << 20)}};
  };
  h.trainExtras = [&](int, const std::vector<double>&, MetricsRecord& tr) {
    if (parle_) parle_->addMetrics(tr.extra);
  };
  return loop.run(h, stop, &stoppedBySignal_);
}

}  // namespace sw
