// The executor: one loop over instructions and the ops every algorithm shares. Ordering rules
// that keep it deadlock-free are the Validator's: posting a send or receive never blocks; only
// consuming received data (Forward, Backward) or a collective (ReduceGrads) waits, and every
// wait is bounded by the communicator's watchdog. Messages are tensors of the backend's device,
// handed to the communicator as they are: on a device backend the pipe and data communicators
// are device-aware (comm/DeviceComm.h: NCCL, or host staging around MPI), on the CPU they are
// MPI itself and nothing is copied.
#include "schedule/Executor.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <thread>

#include "core/Clock.h"
#include "core/Error.h"

namespace sw {
namespace {
constexpr size_t kMaxEvalSendsInFlight = 2;
}  // namespace

void RoundStats::add(const RoundStats& o) {
  lossSum += o.lossSum;
  correct += o.correct;
  correct5 += o.correct5;
  seen += o.seen;
  updates += o.updates;
  compute += o.compute;
  wait += o.wait;
  optimizer += o.optimizer;
  total += o.total;
  peakHeldBytes = std::max(peakHeldBytes, o.peakHeldBytes);
}

void Slot::reset() {
  std::unique_ptr<SlotState> keep = std::move(ext);
  *this = Slot{};
  ext = std::move(keep);
  if (ext) ext->reset();
}

struct Executor::Bucket {
  std::vector<Param*> params;
  Tensor flat;  // on the backend's device
  WorkPtr work;
  bool launched = false;
};

Executor::Executor(StageContext ctx, ExecutorOptions opts, ExecutorPlugin* plugin)
    : c_(ctx), opts_(opts), plugin_(plugin), t0_(Clock::now()), jitter_(Rng::derive(opts.jitterSeed, 0x717e5)) {
  SW_CHECK(c_.be && c_.model && c_.loss, "executor needs a backend, a model and a loss");
  params_ = c_.model->params(c_.range);
  // Buckets in backward order, closed at block boundaries once they reach bucketBytes, so a
  // bucket can be reduced as soon as the backward has passed its last block.
  const size_t nb = c_.range.end - c_.range.begin;
  blockBuckets_.assign(nb, {});
  auto cur = std::make_unique<Bucket>();
  size_t bytes = 0;
  for (size_t i = c_.range.end; i-- > c_.range.begin;) {
    for (Param* p : c_.model->params({i, i + 1})) {
      cur->params.push_back(p);
      bytes += p->value.bytes();
    }
    if ((bytes >= opts_.bucketBytes || i == c_.range.begin) && !cur->params.empty()) {
      int64_t n = 0;
      for (Param* p : cur->params) n += p->value.numel();
      cur->flat = c_.be->empty(Shape({n}));
      blockBuckets_[i - c_.range.begin].push_back(buckets_.size());
      buckets_.push_back(std::move(cur));
      cur = std::make_unique<Bucket>();
      bytes = 0;
    }
  }
  registerSharedOps();
  if (plugin_) plugin_->registerOps(ops_);
}

// Outstanding work only remains when a round failed; the communicator releases it without
// blocking, so an error reaches main (and the job abort) at once.
Executor::~Executor() = default;

Slot& Executor::slot(const Instr& in) {
  if (in.slot < 0) throw Error("instruction " + str(in) + " has no slot");
  while (int(slots_.size()) <= in.slot) {
    slots_.push_back(std::make_unique<Slot>());
    if (plugin_) slots_.back()->ext = plugin_->newSlotState();
  }
  return *slots_[in.slot];
}

Shape Executor::inputShape(int64_t rows) const {
  if (c_.range.begin == 0) {
    std::vector<int64_t> d{rows};
    for (int64_t v : c_.model->sampleShape().dims()) d.push_back(v);
    return Shape(d);
  }
  return c_.model->blockOutputShape(c_.range.begin - 1, rows);
}

Shape Executor::outputShape(int64_t rows) const { return c_.model->blockOutputShape(c_.range.end - 1, rows); }

Mode Executor::modeOf(Phase phase) {
  return phase == Phase::kTrain ? Mode::kTrain : phase == Phase::kCalibrate ? Mode::kCalibrate : Mode::kEval;
}

void Executor::wait(WorkPtr& w, RoundStats& st) {
  if (!w) return;
  const auto tw = Clock::now();
  w->wait();
  w.reset();
  st.wait += secondsSince(tw);
}

void Executor::postSend(const Tensor& t, int peer, int tag, RoundStats& st) {
  if (!opts_.boundedSends) {
    sends_.push_back(c_.pipe->send(t, peer, tag));
    return;
  }
  WorkPtr& prev = channelSend_[{peer, tag}];
  wait(prev, st);
  prev = c_.pipe->send(t, peer, tag);
}

void Executor::reapSends() {
  size_t k = 0;
  for (auto& w : sends_)
    if (!w->done()) sends_[k++] = std::move(w);
  sends_.resize(k);
}

void Executor::useVersion(int version) {
  if (predictedSwapped_) {
    for (size_t i = 0; i < params_.size(); ++i) std::swap(params_[i]->value, predicted_[i]);
    predictedSwapped_ = false;
  }
  if (version == kVersionPredicted) {
    if (!predictedValid_) return;  // nothing to extrapolate yet: current weights
    for (size_t i = 0; i < params_.size(); ++i) std::swap(params_[i]->value, predicted_[i]);
    predictedSwapped_ = true;
    return;
  }
  if (swappedVersion_ >= 0) {  // restore the live weights
    auto& s = stash_.at(swappedVersion_);
    for (size_t i = 0; i < params_.size(); ++i) std::swap(params_[i]->value, s[i]);
    swappedVersion_ = -1;
  }
  if (version < 0 || version == version_) return;
  auto it = stash_.find(version);
  if (it == stash_.end())
    throw Error("weight version " + std::to_string(version) + " was never stashed (current " +
                std::to_string(version_) + ")");
  for (size_t i = 0; i < params_.size(); ++i) std::swap(params_[i]->value, it->second[i]);
  swappedVersion_ = version;
}

RoundStats Executor::run(const Program& program, const RoundInputs& ri) {
  RoundStats st;
  const auto tr = Clock::now();
  version_ = 0;
  if (plugin_) plugin_->beginRun(program);
  // Last instruction (flattened index) that uses each weight version: its stash is freed then.
  std::map<int, size_t> lastUse;
  std::vector<const Instr*> flat;
  for (const Step& s : program)
    for (const Instr& in : s) {
      if (in.version >= 0 && in.op != Op::kStashWeights) lastUse[in.version] = flat.size();
      flat.push_back(&in);
    }
  for (size_t pc = 0; pc < flat.size(); ++pc) {
    const Instr& in = *flat[pc];
    if (opts_.jitterMicros > 0)
      std::this_thread::sleep_for(std::chrono::microseconds(jitter_.below(uint64_t(opts_.jitterMicros) + 1)));
    const OpHandler& h = ops_.get(in.op);
    if (!h) throw Error(std::string("instruction ") + opName(in.op) + " is not supported by this algorithm's executor");
    OpCall call{*this, in, ri, st};
    // A Backward immediately followed (past its sends) by ReduceGrads overlaps the reduction.
    if (in.op == Op::kBackward && c_.data && c_.data->size() > 1)
      for (size_t j = pc + 1; j < flat.size(); ++j) {
        if (flat[j]->op == Op::kSendGrad) continue;
        call.overlapReduce = flat[j]->op == Op::kReduceGrads;
        break;
      }
    // Timing, once for every op: its time less what it reported as blocked.
    const OpTime kind = ops_.time(in.op);
    const double waitBefore = st.wait;
    const auto t = Clock::now();
    const double tStart = opts_.trace ? secondsSince(t0_) : 0;
    h(call);
    const double busy = secondsSince(t) - (st.wait - waitBefore);
    if (kind == OpTime::kCompute) st.compute += busy;
    else if (kind == OpTime::kOptimizer) st.optimizer += busy;
    if (opts_.trace && kind != OpTime::kNone) trace_.push_back({in, tStart, secondsSince(t0_)});
    if (in.op == Op::kForward || in.op == Op::kStashWeights || in.op == Op::kPredictWeights)
      st.peakHeldBytes = std::max(st.peakHeldBytes, heldBytes());
    for (auto it = stash_.begin(); it != stash_.end();) {
      auto lu = lastUse.find(it->first);
      const bool dead = it->first != swappedVersion_ && (lu == lastUse.end() || lu->second <= pc);
      it = dead ? stash_.erase(it) : std::next(it);
    }
    if (!sends_.empty()) reapSends();
  }
  const auto tw = Clock::now();
  waitAll(sends_);
  for (auto& [channel, w] : channelSend_)
    if (w) w->wait();
  channelSend_.clear();
  st.wait += secondsSince(tw);
  for (auto& s : slots_) s->reset();
  stash_.clear();
  st.total = secondsSince(tr);
  return st;
}

void Executor::registerSharedOps() {
  ops_.set(Op::kLoad, [](OpCall& c) {
    Executor& ex = c.ex;
    Slot& s = ex.slot(c.in);
    Batch b;
    c.ri.fetch(c.in.mb, b);
    s.mb = c.in.mb;
    s.rows = b.size();
    s.lossWeight = c.ri.lossWeight ? c.ri.lossWeight(c.in.mb) : 1.f;
    if (ex.c_.coord.firstStage()) s.in = ex.c_.be->fromHost(b.x);
    // Stages with an auxiliary head need the labels too (every interlocking stage).
    if (ex.c_.coord.lastStage() || ex.c_.model->aux(ex.c_.range.end - 1)) s.labels = ex.c_.be->fromHost(b.labels);
  });
  ops_.set(Op::kRecvAct, [](OpCall& c) {
    Executor& ex = c.ex;
    Slot& s = ex.slot(c.in);
    s.mb = c.in.mb;
    s.rows = c.ri.rows(c.in.mb);
    s.lossWeight = c.ri.lossWeight ? c.ri.lossWeight(c.in.mb) : 1.f;
    s.actBuf = ex.c_.be->empty(ex.inputShape(s.rows));
    s.actWork = ex.c_.pipe->recv(s.actBuf, c.in.peer, c.in.tag);
  });
  ops_.set(Op::kRecvGrad, [](OpCall& c) {
    Executor& ex = c.ex;
    Slot& s = ex.slot(c.in);
    s.gradBuf = ex.c_.be->empty(ex.outputShape(s.rows));
    s.gradWork = ex.c_.pipe->recv(s.gradBuf, c.in.peer, c.in.tag);
  });
  ops_.set(Op::kSendAct, [](OpCall& c) {
    Executor& ex = c.ex;
    Slot& s = ex.slot(c.in);
    ex.postSend(s.out, c.in.peer, c.in.tag, c.st);
    s.out = Tensor();
    if (c.ri.phase != Phase::kTrain) {
      s.reset();
      // A forward-only stream has no backward to pace it: without a bound the first stage
      // would buffer the whole evaluation set in unreceived messages.
      ex.reapSends();
      if (ex.sends_.size() > kMaxEvalSendsInFlight) {
        const auto tw = Clock::now();
        ex.sends_.front()->wait();  // reaped below
        c.st.wait += secondsSince(tw);
        ex.reapSends();
      }
    }
  });
  ops_.set(Op::kSendGrad, [](OpCall& c) {
    Executor& ex = c.ex;
    Slot& s = ex.slot(c.in);
    ex.postSend(s.gout, c.in.peer, c.in.tag, c.st);
    s.reset();
  });
  ops_.set(Op::kForward, [](OpCall& c) { c.ex.forwardOp(c); }, OpTime::kCompute);
  ops_.set(Op::kBackward, [](OpCall& c) { c.ex.backwardOp(c); }, OpTime::kCompute);
  ops_.set(Op::kReduceGrads, [](OpCall& c) { c.ex.reduceGrads(c.st); });
  ops_.set(Op::kOptimizerStep, [](OpCall& c) {
    Executor& ex = c.ex;
    ex.optimizerStep(c, [&ex](float lr, float scale) { ex.c_.opt->step(lr, scale); });
  }, OpTime::kOptimizer);
  ops_.set(Op::kStashWeights, [](OpCall& c) {
    Executor& ex = c.ex;
    if (c.in.version != ex.version_)
      throw Error("StashWeights version " + std::to_string(c.in.version) + " but weights are at " +
                  std::to_string(ex.version_));
    std::vector<Tensor> copy;
    for (Param* p : ex.params_) {
      Tensor t = ex.c_.be->empty(p->value.shape());
      ex.c_.be->copy(p->value, t);
      copy.push_back(t);
    }
    ex.stash_[c.in.version] = std::move(copy);
  });
}

void Executor::optimizerStep(OpCall& c, const std::function<void(float, float)>& apply) {
  const float scale = c.ri.averageByCount && c.in.mb > 0 ? 1.f / float(c.in.mb) : c.ri.gradScale;
  apply(c.ri.lr(c.st.updates), scale);
  c_.model->zeroGrad(c_.range);
  ++version_;
  ++c.st.updates;
}

Tensor Executor::takeInput(Slot& s, RoundStats& st) {
  if (s.actWork) {
    wait(s.actWork, st);
    s.in = s.actBuf;
    s.actBuf = Tensor();
  }
  Tensor x = s.in;
  s.in = Tensor();
  return x;
}

Tensor Executor::outputGrad(Slot& s, RoundStats& st) {
  if (c_.coord.lastStage()) {
    Tensor dy = c_.loss->backward(s.lossCtx);
    if (s.lossWeight != 1.f) c_.be->scale(dy, s.lossWeight);
    return dy;
  }
  wait(s.gradWork, st);
  Tensor dy = s.gradBuf;
  s.gradBuf = Tensor();
  return dy;
}

void Executor::finishForward(const Instr& in, Slot& s, const Tensor& out, Mode mode, RoundStats& st) {
  if (!c_.coord.lastStage()) {
    s.out = out;
    return;
  }
  Ctx evalLoss;
  LossResult r = c_.loss->forward(out, s.labels, mode == Mode::kTrain ? s.lossCtx : evalLoss);
  if (mode == Mode::kTrain && !std::isfinite(r.loss))
    throw NumericError("non-finite training loss " + std::to_string(r.loss) + " on micro-batch " +
                       std::to_string(in.mb) + " (lower optim.lr?)");
  st.lossSum += double(r.loss) * double(s.rows);
  st.correct += r.correct;
  st.seen += s.rows;
  if (mode == Mode::kEval) st.correct5 += c_.loss->countTopK(out, s.labels, 5);
  if (mode != Mode::kTrain) s.reset();
}

void Executor::forwardOp(OpCall& c) {
  Slot& s = slot(c.in);
  if (s.mb != c.in.mb)
    throw Error("Forward of mb " + std::to_string(c.in.mb) + " on a slot holding mb " + std::to_string(s.mb));
  const Tensor x = takeInput(s, c.st);
  const Mode mode = modeOf(c.ri.phase);
  useVersion(c.in.version);
  Ctx evalCtx;
  const Tensor out = c_.model->forward(x, mode == Mode::kTrain ? s.ctx : evalCtx, mode, c_.range);
  useVersion(-1);
  finishForward(c.in, s, out, mode, c.st);
}

Tensor Executor::stageBackward(const Tensor& dy, Ctx& ctx, bool overlapReduce) {
  const InputGrad ig = c_.coord.firstStage() ? InputGrad::kSkip : InputGrad::kNeeded;
  if (!overlapReduce) return c_.model->backward(dy, ctx, c_.range, ig);
  Tensor g = dy;
  for (size_t i = c_.range.end; i-- > c_.range.begin;) {
    g = c_.model->backward(g, ctx, {i, i + 1}, i == c_.range.begin ? ig : InputGrad::kNeeded);
    for (size_t b : blockBuckets_[i - c_.range.begin]) launchBucket(*buckets_[b]);
    for (auto& b : buckets_)
      if (b->launched && b->work) b->work->done();  // lets MPI progress the reduction
  }
  return g;
}

void Executor::backwardOp(OpCall& c) {
  Slot& s = slot(c.in);
  if (s.mb != c.in.mb)
    throw Error("Backward of mb " + std::to_string(c.in.mb) + " on a slot holding mb " + std::to_string(s.mb));
  const Tensor dy = outputGrad(s, c.st);
  useVersion(c.in.version);
  s.gout = stageBackward(dy, s.ctx, c.overlapReduce);
  useVersion(-1);
  s.ctx.clear();
  if (c_.coord.firstStage()) s.reset();
}

void Executor::launchBucket(Bucket& b) {
  int64_t off = 0;
  for (Param* p : b.params) {
    Tensor dst = b.flat.slice(off, off + p->value.numel()).reshape(p->value.shape());
    if (p->gradFresh) c_.be->fill(dst, 0.f);
    else c_.be->copy(p->grad, dst);
    off += p->value.numel();
  }
  b.work = c_.data->allReduce(b.flat, ReduceOp::kAvg);
  b.launched = true;
}

void Executor::launchAllBuckets() {
  if (!c_.data || c_.data->size() == 1) return;
  for (auto& b : buckets_) launchBucket(*b);
}

void Executor::reduceGrads(RoundStats& st) {
  if (!c_.data || c_.data->size() == 1) return;
  for (auto& b : buckets_)
    if (!b->launched) launchBucket(*b);
  const auto tw = Clock::now();
  for (auto& b : buckets_) {
    b->work->wait();
    b->work.reset();
    b->launched = false;
    int64_t off = 0;
    for (Param* p : b->params) {
      if (!p->gradFresh) {
        Tensor src = b->flat.slice(off, off + p->value.numel()).reshape(p->value.shape());
        c_.be->copy(src, p->grad);
      }
      off += p->value.numel();
    }
  }
  st.wait += secondsSince(tw);
}

size_t Executor::heldBytes() const {
  std::set<const void*> seen;
  size_t total = 0;
  auto add = [&](const Tensor& t) {
    if (t.defined() && seen.insert(t.data()).second) total += t.bytes();
  };
  std::function<void(const Ctx&)> walk = [&](const Ctx& c) {
    for (const Tensor& t : c.saved) add(t);
    for (const Ctx& k : c.sub) walk(k);
  };
  for (const auto& s : slots_) {
    walk(s->ctx);
    walk(s->lossCtx);
    add(s->in);
    if (s->ext) s->ext->held(add);
  }
  for (const auto& [v, ts] : stash_)
    for (const Tensor& t : ts) add(t);
  for (const Tensor& t : predicted_) add(t);
  if (plugin_) plugin_->held(add);
  return total;
}

}  // namespace sw
