// The DTP plug-in: rank-count rules, the feedback net and its layer assignment, the DTP ops
// (a Forward keeping every block's output, TrainFeedback, SyncFeedback, ComputeTargets and a
// Backward of the layer-local losses), the cross-rank weight check, metrics and the feedback
// state's checkpoint file. Determinism: every rank loads the same batch (shard 0 of 1) and the
// L-DRL noise is keyed on (seed, step, block, iteration), so a checkpoint needs no noise state and
// sequential and layer-parallel runs draw the same noise.
#include "algo/dtp/DtpAlgorithm.h"

#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "algo/dtp/LayerAssign.h"
#include "core/Clock.h"
#include "core/Error.h"
#include "core/Log.h"
#include "io/Checkpoint.h"
#include "io/H5.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

constexpr int64_t kDtpFormat = 2;

// The batch's clean forward pass and its targets, from Forward to Backward.
struct DtpSlot : SlotState {
  dtp::ForwardPass fp;
  dtp::Targets targets;
  void reset() override { *this = DtpSlot{}; }
  void held(const std::function<void(const Tensor&)>& add) const override {
    for (const Tensor& t : fp.h) add(t);
  }
};

void hashInto(uint64_t& h, Backend& be, const Tensor& t) {
  const Tensor host = be.toHost(t);
  const auto* p = reinterpret_cast<const unsigned char*>(host.data());
  for (size_t i = 0; i < host.bytes(); ++i) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
}

std::string statePath(const std::string& dir, int rank) {
  std::string r = std::to_string(rank);
  return dir + "/dtp_rank_" + std::string(5 - std::min<size_t>(5, r.size()), '0') + r + ".h5";
}

void writeState(h5::File& f, Backend& be, const std::string& base, const std::vector<Param*>& params, Optimizer& opt,
                const std::string& stepsAttr) {
  auto& st = opt.state();
  for (size_t i = 0; i < params.size(); ++i) {
    if (st[i].steps == 0) continue;
    const std::string k = base + params[i]->name;
    if (st[i].buf.defined()) f.writeTensor(k + "/buf", be.toHost(st[i].buf));
    f.writeInt64(k + "/steps", {st[i].steps});
  }
  f.setAttr("/", stepsAttr, opt.stepCount());
}

void readInto(const h5::File& f, Backend& be, const std::string& obj, Tensor& dst) {
  if (!f.exists(obj)) throw InputError(f.path() + ": DTP state lacks '" + obj + "'");
  const Tensor h = f.readTensor(obj);
  if (h.shape() != dst.shape())
    throw InputError(f.path() + ": '" + obj + "' has shape " + h.shape().str() + ", the model expects " +
                     dst.shape().str());
  be.copy(h, dst);
}

void readState(const h5::File& f, Backend& be, const std::string& base, const std::vector<Param*>& params,
               Optimizer& opt, const std::string& stepsAttr) {
  auto& st = opt.state();
  for (size_t i = 0; i < params.size(); ++i) {
    st[i] = ParamState{};
    const std::string k = base + params[i]->name;
    if (!f.exists(k + "/steps")) continue;
    st[i].steps = f.readInt64(k + "/steps").at(0);
    if (f.exists(k + "/buf")) {
      st[i].buf = be.zeros(params[i]->value.shape());
      readInto(f, be, k + "/buf", st[i].buf);
    }
  }
  if (!f.hasAttr("/", stepsAttr)) throw InputError(f.path() + ": DTP state lacks attribute " + stepsAttr);
  opt.setStepCount(f.attrInt("/", stepsAttr));
}

}  // namespace

Program buildDtpProgram(int rank, int world, int batches, const std::vector<int>& owner) {
  Program p;
  for (int mb = 0; mb < batches; ++mb) {
    p.push_back({{.op = Op::kLoad, .mb = mb, .slot = 0}, {.op = Op::kForward, .mb = mb, .slot = 0}});
    for (size_t i = 1; i < owner.size(); ++i)
      if (owner[i] == rank) p.push_back({{.op = Op::kTrainFeedback, .mb = mb, .slot = 0, .block = int(i)}});
    if (world > 1) {
      Step sync;
      for (size_t i = 1; i < owner.size(); ++i)
        sync.push_back({.op = Op::kSyncFeedback, .mb = mb, .slot = 0, .peer = owner[i], .block = int(i)});
      p.push_back(std::move(sync));
    }
    p.push_back({{.op = Op::kComputeTargets, .mb = mb, .slot = 0}, {.op = Op::kBackward, .mb = mb, .slot = 0}});
    p.push_back({{.op = Op::kOptimizerStep}});
  }
  return p;
}

ScheduleSpec DtpAlgorithm::plan(int world) const {
  const std::string& algo = cfg_.train.algo;
  // The rank count first, before any data is read.
  if (kind_ == DtpKind::kSequential && world != 1)
    throw ConfigError("train.algo = dtp is sequential and runs on one rank, this job has " + std::to_string(world) +
                      " (use train.algo = dtp_parallel)");
  if (cfg_.train.accumSteps != 1)
    throw ConfigError("train.accum_steps = " + std::to_string(cfg_.train.accumSteps) +
                      ": DTP updates after every batch (its targets depend on the current weights); use 1");
  if (cfg_.pipe.microbatches != 1 || cfg_.pipe.stages > 1)
    throw ConfigError("pipe.*: train.algo = " + algo + " does not pipeline (pipe.stages and pipe.microbatches must stay 1)");
  ScheduleSpec s;
  s.stages = 1;
  s.replicas = world;  // every rank a replica of the whole model, each training its own G blocks
  s.params.set<DtpParams>();  // the owners once the feedback costs are known (attach)
  return s;
}

LoaderPlan DtpAlgorithm::loader(const RankCoord&) const {
  // Every rank loads the same batches (layer parallelism, not data parallelism).
  return {.seed = cfg_.train.seed, .shard = Shard{0, 1}, .batch = cfg_.train.batchSize};
}

void DtpAlgorithm::checkModel(Model& model, const ScheduleSpec& spec) {
  g_ = std::make_unique<dtp::FeedbackNet>(model.backend(), model, cfg_.model.name, cfg_.train.seed);
  hp_ = dtp::Hyper::fromConfig(cfg_.dtp, g_->numBlocks(), cfg_.train.seed);
  cost_.assign(size_t(g_->numBlocks()), 0.0);
  for (int i = 1; i < g_->numBlocks(); ++i) cost_[size_t(i)] = dtp::feedbackCost(model, *g_, i, hp_);
  owner_ = dtp::assignLayers(cost_, spec.replicas, dtp::parseAssign(cfg_.dtp.assign));
}

void DtpAlgorithm::completeSpec(ScheduleSpec& spec, Model&, const std::vector<BlockRange>&) const {
  spec.params.set<DtpParams>().owner = owner_;
}

void DtpAlgorithm::attach(AlgoEnv& env) {
  if (env.world->rank() != 0) return;
  std::ostringstream os;
  double total = 0, worst = 0;
  std::vector<double> load(size_t(env.world->size()), 0.0);
  for (int i = 1; i < g_->numBlocks(); ++i) {
    os << (i > 1 ? ", " : "") << "G" << i << "->rank " << owner_[size_t(i)];
    load[size_t(owner_[size_t(i)])] += cost_[size_t(i)];
    total += cost_[size_t(i)];
  }
  for (double l : load) worst = std::max(worst, l);
  SW_INFO("dtp: feedback net " << g_->numParams() << " parameters; " << os.str() << " (ideal feedback speed-up "
                               << std::fixed << std::setprecision(2) << total / std::max(worst, 1e-30) << "x)");
}

void DtpAlgorithm::bind(AlgoEnv& env) {
  env_ = env;
  info_.clear();
  for (int i = 0; i < g_->numBlocks(); ++i) info_.push_back(g_->block(i).info());
  gopt_.clear();
  gopt_.resize(owner_.size());
  // Feedback SGD: momentum, no weight decay, no dampening, no Nesterov (spec 2.1.2e); weights
  // only (the biases get no gradient). State exists only on the owner (spec 7 E10).
  const OptimConfig fb{.kind = OptimKind::kSgd, .momentum = hp_.momentum, .dampening = 0.f, .weightDecay = 0.f};
  for (size_t i = 1; i < owner_.size(); ++i)
    if (owner_[i] == env.coord.replica)
      gopt_[i] = std::make_unique<Optimizer>(*env.be, std::vector<Param*>{&g_->block(int(i)).weight()}, fb);
}

Program DtpAlgorithm::build(const RankCoord& me, const ScheduleSpec& spec) const {
  return buildDtpProgram(me.replica, spec.replicas, spec.microbatches, spec.params.get<DtpParams>().owner);
}

std::unique_ptr<SlotState> DtpAlgorithm::newSlotState() const { return std::make_unique<DtpSlot>(); }

void DtpAlgorithm::registerOps(OpTable& t) {
  Model& f = *env_.model;
  // Training forward: F on the batch, keeping every block's output, its pool's clean indices and
  // its context (F is frozen during the feedback phase: one pass serves both phases).
  t.set(Op::kForward, [this, &f, base = t.get(Op::kForward)](OpCall& c) {
    if (c.ri.phase != Phase::kTrain) return base(c);
    const auto t0 = Clock::now();
    Slot& s = c.ex.slot(c.in);
    DtpSlot& d = s.state<DtpSlot>();
    dtp::forwardPass(f, info_, c.ex.takeInput(s, c.st), s.labels, d.fp);
    tForward_ += secondsSince(t0);
  }, OpTime::kCompute);
  t.set(Op::kTrainFeedback, [this, &f](OpCall& c) {
    const auto t0 = Clock::now();
    const int i = c.in.block;
    Optimizer* o = gopt_.at(size_t(i)).get();
    if (!o) throw Error(str(c.in) + ": feedback block G" + std::to_string(i) + " is owned by rank " +
                        std::to_string(owner_.at(size_t(i))));
    const dtp::FeedbackStats fs = dtp::trainFeedback(g_->block(i), f.block(size_t(i)), info_[size_t(i)],
                                                     c.ex.slot(c.in).state<DtpSlot>().fp, i, hp_, *o,
                                                     c.ri.step + c.st.updates);
    drl_[size_t(i)] += fs.meanLoss;
    tFeedback_ += secondsSince(t0);
  }, OpTime::kCompute);
  // In place: the owner sends its freshly trained weight, the others receive it. Posted without
  // blocking and waited for only before the targets need them. Biases never change (zero L-DRL
  // gradient), so they are not sent.
  t.set(Op::kSyncFeedback, [this](OpCall& c) {
    pending_.push_back(c.ex.stage().data->broadcast(g_->block(c.in.block).weight().value, c.in.peer));
  });
  t.set(Op::kComputeTargets, [this, &f](OpCall& c) {
    for (WorkPtr& w : pending_) c.ex.wait(w, c.st);
    pending_.clear();
    const auto t0 = Clock::now();
    Slot& s = c.ex.slot(c.in);
    DtpSlot& d = s.state<DtpSlot>();
    d.targets = dtp::computeTargets(f, *g_, d.fp, hp_.beta);
    if (!std::isfinite(d.targets.ce))
      throw NumericError("DTP: non-finite training loss at step " + std::to_string(c.ri.step + c.st.updates) +
                         " (lower optim.lr or dtp.beta)");
    // Every rank computed the same logits: count them once.
    if (c.ex.stage().coord.replica == 0) {
      c.st.lossSum += d.targets.ce * double(s.rows);
      c.st.correct += d.targets.correct;
      c.st.seen += s.rows;
    }
    tUpdate_ += secondsSince(t0);
  }, OpTime::kCompute);
  // L_i = mean_b 1/2 |h_i - t_i|^2, backpropagated into F_i only; the optional probe compares
  // the result with backprop's gradient and leaves it in place.
  t.set(Op::kBackward, [this, &f](OpCall& c) {
    const auto t0 = Clock::now();
    Slot& s = c.ex.slot(c.in);
    DtpSlot& d = s.state<DtpSlot>();
    const std::vector<double> local = dtp::localLosses(f, d.fp, d.targets);
    for (size_t i = 0; i < local.size(); ++i) local_[i] += local[i];
    const int64_t step = c.ri.step + c.st.updates;
    const int64_t every = c.ex.stage().coord.rank == 0 ? cfg_.dtp.bpAngleEvery : 0;  // the probe changes nothing
    if (every > 0 && step % every == 0) {
      const dtp::BpComparison bp = dtp::compareWithBackprop(f, d.fp.x, d.fp.labels, hp_.beta);
      for (size_t i = 0; i < bp.angle.size(); ++i) {
        bpAngle_[i] += bp.angle[i];
        bpNorm_[i] += bp.normRatio[i];
      }
      ++bpAngleN_;
    }
    s.reset();  // release the step's activations
    ++steps_;
    tUpdate_ += secondsSince(t0);
  }, OpTime::kCompute);
}

uint64_t DtpAlgorithm::weightsHash() {
  Backend& be = *env_.be;
  uint64_t h = 0xCBF29CE484222325ull;
  for (Param* p : env_.model->params()) hashInto(h, be, p->value);
  for (Param* p : g_->params()) hashInto(h, be, p->value);
  return h;
}

bool DtpAlgorithm::checkAndResync() {
  Communicator& world = *env_.world;
  if (world.size() == 1) return false;
  const uint64_t h = weightsHash();
  // Two exact 32-bit halves per reduction (a double holds them exactly).
  std::vector<double> hi{double(h >> 32), double(h & 0xFFFFFFFFull)}, lo = hi;
  world.allReduceValues(hi, ReduceOp::kMax);
  world.allReduceValues(lo, ReduceOp::kMin);
  if (hi == lo) return false;
  Communicator& tensors = *env_.data;  // replica r = rank r: root 0 is rank 0
  std::vector<WorkPtr> w;
  auto& fst = env_.opt->state();
  const auto fparams = env_.model->params();
  for (size_t i = 0; i < fparams.size(); ++i) {
    w.push_back(tensors.broadcast(fparams[i]->value, 0));
    // Momentum buffers exist after the first step on every rank alike.
    if (fst[i].buf.defined()) w.push_back(tensors.broadcast(fst[i].buf, 0));
  }
  for (Param* p : g_->params()) w.push_back(tensors.broadcast(p->value, 0));
  waitAll(w);
  return true;
}

// Identical initialisation on every rank is by construction (same seed); verified once.
void DtpAlgorithm::start() { resyncs_ += checkAndResync() ? 1 : 0; }

void DtpAlgorithm::afterRound(int64_t step) {
  if (cfg_.dtp.checkSyncEvery > 0 && step % cfg_.dtp.checkSyncEvery == 0) resyncs_ += checkAndResync() ? 1 : 0;
}

void DtpAlgorithm::epochEnd(int) { resyncs_ += checkAndResync() ? 1 : 0; }

void DtpAlgorithm::epochBegin(int) {
  const size_t n = size_t(g_->numBlocks());
  local_.assign(n, 0.0);
  drl_.assign(n, 0.0);
  bpAngle_.assign(n, 0.0);
  bpNorm_.assign(n, 0.0);
  bpAngleN_ = steps_ = 0;
  tForward_ = tFeedback_ = tUpdate_ = 0;
}

std::vector<RankValue> DtpAlgorithm::rankValues() const {
  return {{.name = "feedback_s_per_step", .value = tFeedback_ / double(std::max<int64_t>(1, steps_)), .always = true}};
}

void DtpAlgorithm::trainExtras(const std::vector<double>& drlSum, std::vector<std::pair<std::string, double>>& x) const {
  const size_t nblocks = size_t(g_->numBlocks());
  Model& f = *env_.model;
  const double n = double(std::max<int64_t>(1, steps_));
  for (size_t i = 0; i < nblocks; ++i) x.push_back({"local_loss_L" + std::to_string(i), local_[i] / n});
  for (size_t i = 1; i < nblocks; ++i) x.push_back({"drl_loss_G" + std::to_string(i), drlSum[i] / n});
  for (size_t i = 1; i < nblocks; ++i)
    x.push_back({"angle_G" + std::to_string(i), dtp::feedbackAngle(g_->block(int(i)), f, int(i))});
  for (size_t i = 1; i < nblocks; ++i)
    x.push_back({"norm_ratio_G" + std::to_string(i), dtp::feedbackNormRatio(g_->block(int(i)), f, int(i))});
  for (size_t i = 0; i < nblocks && bpAngleN_ > 0; ++i) {
    x.push_back({"bp_angle_F" + std::to_string(i), bpAngle_[i] / double(bpAngleN_)});
    x.push_back({"bp_norm_ratio_F" + std::to_string(i), bpNorm_[i] / double(bpAngleN_)});
  }
  x.push_back({"forward_s_per_step", tForward_ / n});
  x.push_back({"update_s_per_step", tUpdate_ / n});
  x.push_back({"resyncs", double(resyncs_)});
}

std::string DtpAlgorithm::epochNote() const {
  const size_t nblocks = size_t(g_->numBlocks());
  Model& f = *env_.model;
  std::ostringstream os;
  // Values i = first..nblocks-1 of fn(i), comma-separated, with `digits` decimals.
  auto list = [&](const char* label, size_t first, int digits, const std::function<double(size_t)>& fn) {
    os << label;
    for (size_t i = first; i < nblocks; ++i) os << (i > first ? "," : "") << std::fixed << std::setprecision(digits) << fn(i);
  };
  list(" | angle(G,F^T) deg ", 1, 0, [&](size_t i) { return dtp::feedbackAngle(g_->block(int(i)), f, int(i)); });
  if (bpAngleN_ > 0) {
    list(" | angle(dtp,bp) deg ", 0, 0, [&](size_t i) { return bpAngle_[i] / double(bpAngleN_); });
    list(" | |dtp|/|beta bp| ", 0, 2, [&](size_t i) { return bpNorm_[i] / double(bpAngleN_); });
  }
  list(" | |G|/|F| ", 1, 2, [&](size_t i) { return dtp::feedbackNormRatio(g_->block(int(i)), f, int(i)); });
  return os.str();
}

// DIR/step_N/dtp_rank_R.h5: the layer assignment, every G's parameters and the momentum of the
// G blocks this rank owns (F's parameters and momentum are in the rank's shard).
void DtpAlgorithm::save(const std::string& stepDir, int rank) const {
  fs::create_directories(stepDir);
  const std::string path = statePath(stepDir, rank), tmp = path + ".tmp";
  Backend& be = *env_.be;
  {
    h5::File f(tmp, h5::Access::kCreate);
    f.setAttr("/", "dtp_format", kDtpFormat);
    f.writeInt64("/dtp/owner", std::vector<int64_t>(owner_.begin(), owner_.end()));
    for (Param* prm : g_->params()) f.writeTensor("/params/" + prm->name, be.toHost(prm->value));
    for (int i = 1; i < g_->numBlocks(); ++i)
      if (Optimizer* o = gopt_.at(size_t(i)).get())
        writeState(f, be, "/feedback_optim/", o->params(), *o, "feedback_optimizer_steps_G" + std::to_string(i));
    f.flush();
  }
  fsyncPath(tmp);
  fs::rename(tmp, path);
}

void DtpAlgorithm::load(const ResumeSource& src) {
  // This job's shape: every rank its own file. Another rank count: each feedback block (weights
  // and, on its new owner, its optimizer state) from the file of the rank that owned it.
  SourceFiles files(src, "dtp_");
  const h5::File& f = files.at(src.ranks.front());
  const std::string path = f.path();
  if (!f.hasAttr("/", "dtp_format") || f.attrInt("/", "dtp_format") != kDtpFormat)
    throw InputError(path + ": not a DTP feedback state of format " + std::to_string(kDtpFormat));
  const auto owner = f.readInt64("/dtp/owner");
  Backend& be = *env_.be;
  if (src.sameShape) {
    if (std::vector<int>(owner.begin(), owner.end()) != owner_)
      throw InputError(path + ": checkpoint assigns feedback blocks to ranks differently (dtp.assign changed?)");
    for (Param* prm : g_->params()) readInto(f, be, "/params/" + prm->name, prm->value);
    for (int i = 1; i < g_->numBlocks(); ++i)
      if (Optimizer* o = gopt_.at(size_t(i)).get())
        readState(f, be, "/feedback_optim/", o->params(), *o, "feedback_optimizer_steps_G" + std::to_string(i));
    return;
  }
  if (owner.size() != owner_.size())
    throw InputError(path + ": DTP state of " + std::to_string(owner.size()) + " feedback blocks, the model has " +
                     std::to_string(owner_.size()));
  for (int i = 0; i < g_->numBlocks(); ++i) {
    const int64_t o = owner[size_t(i)];
    const h5::File& g = i > 0 && o >= 0 && o < src.manifest.world ? files.at(int(o)) : f;
    dtp::FeedbackBlock& blk = g_->block(i);
    for (Param* prm : {&blk.weight(), &blk.bias()}) readInto(g, be, "/params/" + prm->name, prm->value);
    if (Optimizer* opt = gopt_.at(size_t(i)).get())
      readState(g, be, "/feedback_optim/", opt->params(), *opt, "feedback_optimizer_steps_G" + std::to_string(i));
  }
}

std::unique_ptr<Algorithm> makeDtp(const TrainConfig& cfg, DtpKind kind) {
  return std::make_unique<DtpAlgorithm>(cfg, kind);
}

}  // namespace sw
