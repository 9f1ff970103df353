// The Parle plug-in (see ParleAlgorithm.h). Collectives here run on the `data` communicator
// (this stage across the replicas): one allreduce per synchronisation, one per master
// evaluation. Every rank of the job reaches them in the same order because rounds, evaluations
// and checkpoints are lock-step in the Trainer.
#include "algo/parle/ParleAlgorithm.h"

#include <chrono>
#include <filesystem>
#include <sstream>

#include "core/Error.h"
#include "io/Checkpoint.h"
#include "io/H5.h"
#include "core/Clock.h"

namespace fs = std::filesystem;

namespace sw {
ParleAlgorithm::ParleAlgorithm(const TrainConfig& cfg)
    : Algorithm(cfg),
      sched_(makeParleSchedule(cfg.parle.pipeline, cfg.parle.L == 0 ? ParleCoupling::kEveryStep : ParleCoupling::kAfterSteps)) {}

ScheduleSpec ParleAlgorithm::plan(int world) const {
  const ScheduleSpec s = shape(world, stagesOr(world, 1));
  if (cfg_.parle.mode == "entropy" && s.replicas != 1)
    throw ConfigError("parle.mode = entropy is Entropy-SGD: one replica, but this job has " + std::to_string(s.replicas) +
                      " (world / pipe.stages = " + std::to_string(s.stages) +
                      "); run it on pipe.stages ranks or use parle.mode = parle");
  return s;
}

uint64_t ParleAlgorithm::modelSeed(int replica) const {
  // The references seed replica a with seed + a (spec 2.1, 4): replicas start apart.
  return cfg_.parle.init == "replica" ? cfg_.train.seed + uint64_t(replica) : cfg_.train.seed;
}

LoaderPlan ParleAlgorithm::loader(const RankCoord& c) const {
  LoaderPlan p = Algorithm::loader(c);
  if (cfg_.parle.data == "full") p.seed = cfg_.train.seed + uint64_t(c.replica);
  if (cfg_.parle.data != "shard") {
    p.shard = Shard{0, 1};
    p.global = 0;
  }
  p.averaged = false;  // replicas couple through the anchors, not by averaging gradients
  return p;
}

void ParleAlgorithm::registerOps(OpTable& t) {
  t.set(Op::kOptimizerStep, [this](OpCall& c) {
    c.ex.optimizerStep(c, [this](float lr, float scale) { opt_->innerStep(lr, scale); });
  }, OpTime::kOptimizer);
  // The rate of the round's last optimizer step.
  t.set(Op::kElasticSync, [this](OpCall& c) { c.st.wait += elasticSync(c.ri.lr(std::max(0, c.st.updates - 1))); });
}

EvalResult ParleAlgorithm::evaluateTest(int epoch, Executor& exec, const std::function<EvalResult()>& plain) {
  EvalResult r;
  withMaster(exec, epoch, [&] { r = plain(); });
  return r;
}


namespace {

std::string pad5(int v) {
  std::string s = std::to_string(v);
  return std::string(s.size() < 5 ? 5 - s.size() : 0, '0') + s;
}

}  // namespace

void ParleAlgorithm::bind(AlgoEnv& env) {
  c_ = ParleContext{.be = env.be, .model = env.model, .range = env.range, .inner = env.opt, .data = env.data,
                    .coord = env.coord, .spec = *env.spec, .train = env.train, .microBatchRows = env.microBatchRows,
                    .batchesPerEpoch = env.batchesPerEpoch};
  const ParleSection& p = cfg_.parle;
  const int n = c_.spec.replicas;
  opts_.variant = p.variant == "mpi2018" ? ParleVariant::kMpi2018 : ParleVariant::kOptim2017;
  opts_.L = p.L;
  opts_.gamma0 = p.gamma;
  // mpi2018 scales the command-line rho by L n (spec 2.1).
  opts_.rho0 = opts_.variant == ParleVariant::kMpi2018 ? p.rho * p.L * n : p.rho;
  opts_.gammaMax = p.gammaMax;
  opts_.rhoMax = p.rhoMax;
  opts_.growth = p.scoping / double(std::max<int64_t>(1, c_.batchesPerEpoch));
  opts_.innerLr = float(p.innerLr);
  opts_.beta1 = float(p.beta1);
  opts_.outerMomentum = float(p.outerMomentum);
  // The released code advances t once per parameter tensor of the whole network (spec 9.2).
  opts_.counterStep = p.counterPerTensor ? int64_t(c_.model->params().size()) : 1;
  params_ = c_.model->params(c_.range);
  buffers_ = c_.model->buffers(c_.range);
  opt_ = std::make_unique<ParleOptimizer>(*c_.be, params_, *c_.inner, opts_);
  flat_ = Tensor::zeros(Shape{std::max<int64_t>(1, opt_->numel())});
}

std::string ParleAlgorithm::describe() const {
  std::ostringstream os;
  os << "parle (" << cfg_.parle.mode << ", " << cfg_.parle.variant << "): " << c_.spec.replicas << " replica(s), L "
     << opts_.L << ", gamma0 " << opts_.gamma0 << ", rho0 " << opts_.rho0 << ", inner lr "
     << (opts_.innerLr > 0 ? std::to_string(opts_.innerLr) : std::string("scheduled")) << ", couplings x"
     << 1 + opts_.growth << " per " << (opts_.variant == ParleVariant::kOptim2017 ? "sync" : "floor(t/L)")
     << ", data " << cfg_.parle.data;
  return os.str();
}

double ParleAlgorithm::elasticSync(float lr) {
  opt_->prepareSync();
  const auto t = Clock::now();
  c_.data->allReduce(opt_->syncBuffer(), ReduceOp::kAvg)->wait();
  const double waited = secondsSince(t);
  opt_->finishSync(lr);
  return waited;
}

std::vector<Tensor> ParleAlgorithm::copyParams() {
  std::vector<Tensor> v;
  for (Param* p : params_) v.push_back(c_.be->toHost(p->value).clone());
  return v;
}

std::vector<Tensor> ParleAlgorithm::copyBuffers() {
  std::vector<Tensor> v;
  for (Buffer* b : buffers_) v.push_back(c_.be->toHost(b->value).clone());
  return v;
}

void ParleAlgorithm::putParams(const std::vector<Tensor>& v) {
  for (size_t i = 0; i < params_.size(); ++i) c_.be->copy(v[i], params_[i]->value);
}

void ParleAlgorithm::putBuffers(const std::vector<Tensor>& v) {
  for (size_t i = 0; i < buffers_.size(); ++i) c_.be->copy(v[i], buffers_[i]->value);
}

void ParleAlgorithm::withMasterWeights(const std::function<void()>& fn) {
  const std::vector<Tensor> live = copyParams();
  opt_->packAnchors(flat_);
  c_.data->allReduce(flat_, ReduceOp::kAvg)->wait();
  int64_t off = 0;
  for (Param* p : params_) {
    Tensor src = flat_.slice(off, off + p->value.numel()).reshape(p->value.shape());
    c_.be->copy(src, p->value);
    off += p->value.numel();
  }
  try {
    fn();
  } catch (...) {
    putParams(live);
    throw;
  }
  putParams(live);
}

void ParleAlgorithm::withMaster(Executor& exec, int epoch, const std::function<void()>& fn) {
  const std::vector<Tensor> liveBuffers = copyBuffers();
  withMasterWeights([&] {
    try {
      if (cfg_.parle.bnRefresh) refreshBatchNorm(exec, epoch);
      masterParams_ = copyParams();
      masterBuffers_ = copyBuffers();
      fn();
    } catch (...) {
      putBuffers(liveBuffers);
      throw;
    }
    putBuffers(liveBuffers);
  });
}

// The master's weights are an average, so no replica's running statistics fit them (spec 7.4):
// a forward pass in calibration mode (batch statistics, dropout off, PyTorch momentum 0.1) over
// training micro-batches of the training size re-estimates them. It starts from the replicas'
// mean statistics (the references start from some model copy's; after the full pass of the
// default the start weighs 0.9^nb, nothing) and every replica reads the same batches, so all
// replicas get bitwise the same master, and a rerun gives the same statistics. Pipelined
// replicas run it through the Executor like an evaluation.
void ParleAlgorithm::refreshBatchNorm(Executor& exec, int epoch) {
  int64_t n = 0;
  for (Buffer* b : buffers_) n += b->value.numel();
  if (n > 0) {
    Tensor flat = Tensor::empty(Shape{n});
    int64_t off = 0;
    for (Buffer* b : buffers_) {
      Tensor dst = flat.slice(off, off + b->value.numel()).reshape(b->value.shape());
      c_.be->copy(b->value, dst);
      off += b->value.numel();
    }
    c_.data->allReduce(flat, ReduceOp::kAvg)->wait();
    off = 0;
    for (Buffer* b : buffers_) {
      c_.be->copy(flat.slice(off, off + b->value.numel()).reshape(b->value.shape()), b->value);
      off += b->value.numel();
    }
  }
  BatchLoader loader(*c_.train, c_.microBatchRows, cfg_.train.seed ^ 0xB17E'57A7'5000'0000ull, Shard{0, 1}, cfg_.augment,
                     Shuffle::kYes, DropLast::kYes, Augment::kNo);
  loader.seek(epoch, 0);
  int64_t k = loader.batchesPerEpoch();
  if (cfg_.parle.bnBatches > 0) k = std::min(k, cfg_.parle.bnBatches);
  if (k == 0) return;
  ScheduleSpec s = c_.spec;
  s.microbatches = int(k);
  s.phase = Phase::kCalibrate;
  const Program program = buildEvalProgram(c_.coord.stage, s);
  RoundInputs ri;
  ri.phase = Phase::kCalibrate;
  ri.fetch = [&](int, Batch& out) {
    if (!loader.next(out)) throw Error("batch-norm re-estimation loader ended early");
  };
  ri.rows = [&](int) { return c_.microBatchRows; };
  ri.lr = [](int) { return 0.f; };
  exec.run(program, ri);
}

void ParleAlgorithm::trainExtras(const std::vector<double>&, std::vector<std::pair<std::string, double>>& extra) const {
  const ParleState& s = opt_->state();
  extra.push_back({"parle_gamma", s.gamma});
  extra.push_back({"parle_rho", s.rho});
  extra.push_back({"parle_syncs", double(s.syncs)});
}

void ParleAlgorithm::save(const std::string& stepDir, int rank) const {
  const std::string path = stepDir + "/parle_rank_" + pad5(rank) + ".h5";
  const std::string tmp = path + ".tmp";
  fs::create_directories(stepDir);
  Backend& be = *c_.be;
  ParleOptimizer& o = *opt_;
  {
    h5::File f(tmp, h5::Access::kCreate);
    const ParleState& s = opt_->state();
    f.setAttr("/", "variant", cfg_.parle.variant);
    f.setAttr("/", "mode", cfg_.parle.mode);
    f.setAttr("/", "L", int64_t(opts_.L));
    f.setAttr("/", "replicas", int64_t(c_.spec.replicas));
    f.setAttr("/", "t", s.t);
    f.setAttr("/", "step_in_block", s.stepInBlock);
    f.setAttr("/", "syncs", s.syncs);
    f.setAttr("/", "gamma", s.gamma);
    f.setAttr("/", "rho", s.rho);
    auto& slots = o.slots();
    for (size_t i = 0; i < params_.size(); ++i) {
      const std::string base = "/state/" + params_[i]->name;
      const auto& sl = slots[i];
      if (sl.anchor.defined()) f.writeTensor(base + "/anchor", be.toHost(sl.anchor));
      if (sl.avg.defined()) f.writeTensor(base + "/avg", be.toHost(sl.avg));
      if (sl.vIn.defined()) f.writeTensor(base + "/v_in", be.toHost(sl.vIn));
      if (sl.vOut.defined()) f.writeTensor(base + "/v_out", be.toHost(sl.vOut));
    }
    // The deliverable: the last evaluated master of this stage (weights + re-estimated BN).
    for (size_t i = 0; i < masterParams_.size(); ++i)
      f.writeTensor("/master/params/" + params_[i]->name, masterParams_[i]);
    for (size_t i = 0; i < masterBuffers_.size(); ++i)
      f.writeTensor("/master/buffers/" + buffers_[i]->name, masterBuffers_[i]);
    f.flush();
  }
  fsyncPath(tmp);
  fs::rename(tmp, path);
}

void ParleAlgorithm::load(const ResumeSource& src) {
  // Resharded: replica k continues the writing job's replica k % n (its weights, anchors,
  // averages and momenta, whichever old stage held them); the coupling then averages over the
  // new replicas.
  SourceFiles files(src, "parle_");
  const h5::File& f = files.at(src.ranks.front());
  const std::string path = f.path();
  const std::string variant = f.attrString("/", "variant");
  const int64_t L = f.attrInt("/", "L"), n = f.attrInt("/", "replicas");
  if (variant != cfg_.parle.variant || L != opts_.L || (src.sameShape && n != c_.spec.replicas))
    throw InputError(path + ": Parle state of parle.variant = " + variant + ", L = " + std::to_string(L) + ", " +
                     std::to_string(n) + " replicas; the config says " + cfg_.parle.variant + ", L = " +
                     std::to_string(opts_.L) + ", " + std::to_string(c_.spec.replicas) + " replicas");
  ParleState& s = opt_->state();
  s.t = f.attrInt("/", "t");
  s.stepInBlock = f.attrInt("/", "step_in_block");
  s.syncs = f.attrInt("/", "syncs");
  s.gamma = f.attrDouble("/", "gamma");
  s.rho = f.attrDouble("/", "rho");
  Backend& be = *c_.be;
  auto& slots = opt_->slots();
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string base = "/state/" + params_[i]->name;
    auto load = [&](const std::string& k, Tensor& t) {
      const std::string obj = base + "/" + k;
      h5::File* g = files.find(obj);
      if (!g) {
        if (t.defined()) throw InputError(path + ": Parle state lacks '" + obj + "'");
        return;  // not materialised in this configuration, or not allocated yet at save time
      }
      Tensor h = g->readTensor(obj);
      if (h.shape() != params_[i]->value.shape())
        throw InputError(g->path() + ": '" + obj + "' has shape " + h.shape().str() + ", the parameter is " +
                         params_[i]->value.shape().str());
      if (!t.defined()) t = be.empty(h.shape());
      be.copy(h, t);
    };
    load("anchor", slots[i].anchor);
    load("avg", slots[i].avg);
    slots[i].vIn = Tensor();
    slots[i].vOut = Tensor();
    load("v_in", slots[i].vIn);
    load("v_out", slots[i].vOut);
  }
  masterParams_.clear();
  masterBuffers_.clear();
  if (f.exists("/master")) {
    auto read = [&](const std::string& obj) {
      h5::File* g = files.find(obj);
      if (!g) throw InputError(path + ": Parle state lacks '" + obj + "'");
      return g->readTensor(obj);
    };
    for (Param* p : params_) masterParams_.push_back(read("/master/params/" + p->name));
    for (Buffer* b : buffers_) masterBuffers_.push_back(read("/master/buffers/" + b->name));
  }
}

std::unique_ptr<Algorithm> makeParle(const TrainConfig& cfg) { return std::make_unique<ParleAlgorithm>(cfg); }

}  // namespace sw
