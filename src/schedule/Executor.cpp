// The executor: one switch over instructions. Ordering rules that keep it deadlock-free are the
// Validator's: posting a send or receive never blocks; only consuming received data (Forward,
// Backward) or a collective (ReduceGrads) waits, and every wait is bounded by the communicator's
// watchdog. Messages are tensors of the backend's device, handed to the communicator as they
// are: on a device backend the pipe and data communicators are device-aware (TrainingComm.h:
// NCCL, or host staging around MPI), on the CPU they are MPI itself and nothing is copied.
#include "schedule/Executor.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <thread>

#include "core/Error.h"
#include "nn/AuxHead.h"

namespace sw {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
constexpr size_t kMaxEvalSendsInFlight = 2;
}  // namespace

void RoundStats::add(const RoundStats& o) {
  lossSum += o.lossSum;
  correct += o.correct;
  seen += o.seen;
  updates += o.updates;
  compute += o.compute;
  wait += o.wait;
  optimizer += o.optimizer;
  total += o.total;
  peakHeldBytes = std::max(peakHeldBytes, o.peakHeldBytes);
}

struct Executor::Slot {
  int mb = -1;
  int64_t rows = 0;
  Tensor in, labels, out, gin, gout;
  Tensor actBuf, gradBuf, reconBuf;  // receive buffers, on the backend's device
  WorkPtr actWork, gradWork, reconWork;
  Ctx ctx, lossCtx;
  // Retain::kInput / kReconstruct: per block of the stage, the input kept (if any) and the
  // dropout stream's state at its forward, so a recompute draws the same masks.
  std::vector<Tensor> blockIn;
  std::vector<Rng::State> rngAt;
  bool stored = false;  // forward kept blockIn instead of ctx
  Tensor reconIn;       // this stage's input as it knows it (sent back on kTagRecon)
  // Interlocking: the output for the aux head, and per loss j the gradient w.r.t. the output
  // (own loss or received) and w.r.t. the input (to send).
  Tensor auxIn;
  std::map<int, Tensor> lossDy, lossDx, lossBuf;
  std::map<int, WorkPtr> lossWork;
  bool ctxDone = false;
  void reset() { *this = Slot{}; }
};

struct Executor::Bucket {
  std::vector<Param*> params;
  Tensor flat;  // on the backend's device
  WorkPtr work;
  bool launched = false;
};

Executor::Executor(StageContext ctx, ExecutorOptions opts)
    : c_(ctx), opts_(opts), t0_(Clock::now()), jitter_(Rng::derive(opts.jitterSeed, 0x717e5)) {
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
}

// Outstanding work only remains when a round failed; the communicator releases it without
// blocking, so an error reaches main (and the job abort) at once.
Executor::~Executor() = default;

Executor::Slot& Executor::slot(const Instr& in) {
  if (in.slot < 0) throw Error("instruction " + str(in) + " has no slot");
  while (int(slots_.size()) <= in.slot) slots_.push_back(std::make_unique<Slot>());
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

Shape Executor::outputShape(int64_t rows) const {
  return c_.model->blockOutputShape(c_.range.end - 1, rows);
}

void Executor::postSend(const Tensor& t, int peer, int tag, RoundStats& st) {
  if (!opts_.boundedSends) {
    sends_.push_back(c_.pipe->send(t, peer, tag));
    return;
  }
  WorkPtr& prev = channelSend_[{peer, tag}];
  if (prev) {
    const auto tw = Clock::now();
    prev->wait();
    st.wait += since(tw);
  }
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
  ctxUses_.clear();
  dxSent_.clear();
  std::map<std::pair<int, int>, const Instr*> lastPass;  // (mb, loss) -> its latest backward pass
  for (const Step& s : program)
    for (const Instr& in : s) {
      if (in.op == Op::kInputGrad || (in.op == Op::kBackward && in.loss >= 0)) {
        ++ctxUses_[in.mb];
        lastPass[{in.mb, in.loss}] = &in;
      }
      // A SendGrad sends the input gradient of the pass of its loss just before it.
      if (in.op == Op::kSendGrad && in.loss >= 0 && lastPass.count({in.mb, in.loss}))
        dxSent_.insert(lastPass.at({in.mb, in.loss}));
    }
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
    const bool traced = opts_.trace && (in.op == Op::kForward || in.op == Op::kBackward ||
                                        in.op == Op::kReduceGrads || in.op == Op::kOptimizerStep ||
                                        in.op == Op::kLocalLoss || in.op == Op::kInputGrad);
    const double tStart = traced ? since(t0_) : 0;
    // A Backward immediately followed (past its sends) by ReduceGrads overlaps the reduction.
    bool overlap = false;
    if (in.op == Op::kBackward && c_.data && c_.data->size() > 1)
      for (size_t j = pc + 1; j < flat.size(); ++j) {
        if (flat[j]->op == Op::kSendGrad) continue;
        overlap = flat[j]->op == Op::kReduceGrads;
        break;
      }
    if (in.op == Op::kForward) forward(in, ri, st);
    else if (in.op == Op::kInputGrad || (in.op == Op::kBackward && in.loss >= 0)) lossBackward(in, st);
    else if (in.op == Op::kBackward) backward(in, overlap, st);
    else dispatch(in, ri, st);
    if (traced) trace_.push_back({in, tStart, since(t0_)});
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
  st.wait += since(tw);
  for (auto& s : slots_) s->reset();
  stash_.clear();
  st.total = since(tr);
  return st;
}

void Executor::dispatch(const Instr& in, const RoundInputs& ri, RoundStats& st) {
  switch (in.op) {
    case Op::kLoad: {
      Slot& s = slot(in);
      Batch b;
      ri.fetch(in.mb, b);
      s.mb = in.mb;
      s.rows = b.size();
      if (c_.coord.firstStage()) s.in = c_.be->fromHost(b.x);
      // Stages with an auxiliary head need the labels too (every interlocking stage).
      if (c_.coord.lastStage() || c_.model->aux(c_.range.end - 1)) s.labels = c_.be->fromHost(b.labels);
      break;
    }
    case Op::kRecvAct: {
      Slot& s = slot(in);
      s.mb = in.mb;
      s.rows = ri.rows(in.mb);
      s.actBuf = c_.be->empty(inputShape(s.rows));
      s.actWork = c_.pipe->recv(s.actBuf, in.peer, in.tag);
      break;
    }
    case Op::kRecvGrad: {
      Slot& s = slot(in);
      if (in.tag == kTagRecon) {
        s.reconBuf = c_.be->empty(outputShape(s.rows));
        s.reconWork = c_.pipe->recv(s.reconBuf, in.peer, in.tag);
        break;
      }
      if (in.loss >= 0) {
        Tensor& buf = s.lossBuf[in.loss];
        buf = c_.be->empty(outputShape(s.rows));
        s.lossWork[in.loss] = c_.pipe->recv(buf, in.peer, in.tag);
        break;
      }
      s.gradBuf = c_.be->empty(outputShape(s.rows));
      s.gradWork = c_.pipe->recv(s.gradBuf, in.peer, in.tag);
      break;
    }
    case Op::kSendAct: {
      Slot& s = slot(in);
      postSend(s.out, in.peer, in.tag, st);
      s.out = Tensor();
      if (ri.phase != Phase::kTrain) {
        s.reset();
        // A forward-only stream has no backward to pace it: without a bound the first stage
        // would buffer the whole evaluation set in unreceived messages.
        reapSends();
        if (sends_.size() > kMaxEvalSendsInFlight) {
          const auto tw = Clock::now();
          sends_.front()->wait();
          st.wait += since(tw);
          reapSends();
        }
      }
      break;
    }
    case Op::kSendGrad: {
      Slot& s = slot(in);
      if (in.tag == kTagRecon) {
        if (!s.reconIn.defined()) throw Error("no input of mb " + std::to_string(in.mb) + " to send back");
        sends_.push_back(c_.pipe->send(s.reconIn, in.peer, in.tag));
        s.reconIn = Tensor();
        break;
      }
      if (in.loss >= 0) {
        auto it = s.lossDx.find(in.loss);
        if (it == s.lossDx.end())
          throw Error("SendGrad of loss " + std::to_string(in.loss) + " for mb " + std::to_string(in.mb) +
                      ": no such input gradient on stage " + std::to_string(c_.coord.stage));
        postSend(it->second, in.peer, in.tag, st);
        s.lossDx.erase(it);
        if (s.ctxDone && s.lossDx.empty()) s.reset();
        break;
      }
      postSend(s.gout, in.peer, in.tag, st);
      s.reset();
      break;
    }
    case Op::kLocalLoss:
      localLoss(in, st);
      break;
    case Op::kReduceGrads:
      reduceGrads(st);
      break;
    case Op::kOptimizerStep: {
      const auto t = Clock::now();
      const float scale = ri.averageByCount && in.mb > 0 ? 1.f / float(in.mb) : ri.gradScale;
      if (c_.rule) c_.rule->step(ri.lr(st.updates), scale);
      else c_.opt->step(ri.lr(st.updates), scale);
      c_.model->zeroGrad(c_.range);
      ++version_;
      ++st.updates;
      st.optimizer += since(t);
      break;
    }
    case Op::kPredictWeights: {
      const auto t = Clock::now();
      useVersion(-1);
      predictedValid_ = c_.opt->predict(ri.lr(st.updates), float(in.version), in.tag == 1, predicted_);
      st.optimizer += since(t);
      break;
    }
    case Op::kElasticSync: {
      if (!c_.rule) throw Error("ElasticSync in a program whose algorithm has no update rule");
      st.wait += c_.rule->elasticSync(ri.lr(std::max(0, st.updates - 1)));
      break;
    }
    case Op::kStashWeights: {
      if (in.version != version_)
        throw Error("StashWeights version " + std::to_string(in.version) + " but weights are at " +
                    std::to_string(version_));
      std::vector<Tensor> copy;
      for (Param* p : params_) {
        Tensor t = c_.be->empty(p->value.shape());
        c_.be->copy(p->value, t);
        copy.push_back(t);
      }
      stash_[in.version] = std::move(copy);
      break;
    }
    default:
      throw Error(std::string("instruction ") + opName(in.op) + " is not supported by this executor");
  }
}

void Executor::forward(const Instr& in, const RoundInputs& ri, RoundStats& st) {
  Slot& s = slot(in);
  if (s.mb != in.mb) throw Error("Forward of mb " + std::to_string(in.mb) + " on a slot holding mb " + std::to_string(s.mb));
  if (s.actWork) {
    const auto tw = Clock::now();
    s.actWork->wait();
    s.actWork.reset();
    st.wait += since(tw);
    s.in = s.actBuf;
    s.actBuf = Tensor();
  }
  const auto t = Clock::now();
  const Mode mode = ri.phase == Phase::kTrain       ? Mode::kTrain
                    : ri.phase == Phase::kCalibrate ? Mode::kCalibrate
                                                    : Mode::kEval;
  useVersion(in.version);
  Tensor out;
  const bool keep = mode == Mode::kTrain && opts_.storage != Retain::kContext && !c_.coord.lastStage();
  if (keep) {
    storedForward(s, mode);
    out = s.out;
  } else {
    Ctx evalCtx;
    out = c_.model->forward(s.in, mode == Mode::kTrain ? s.ctx : evalCtx, mode, c_.range);
    if (mode == Mode::kTrain && opts_.storage != Retain::kContext) s.reconIn = s.in;  // last stage
  }
  useVersion(-1);
  s.in = Tensor();
  if (c_.coord.lastStage()) {
    Ctx evalLoss;
    LossResult r = c_.loss->forward(out, s.labels, mode == Mode::kTrain ? s.lossCtx : evalLoss);
    if (mode == Mode::kTrain && !std::isfinite(r.loss))
      throw NumericError("non-finite training loss " + std::to_string(r.loss) + " on micro-batch " +
                         std::to_string(in.mb) + " (lower optim.lr?)");
    st.lossSum += double(r.loss) * double(s.rows);
    st.correct += r.correct;
    st.seen += s.rows;
    if (mode != Mode::kTrain) s.reset();
  } else {
    s.out = out;
    if (mode == Mode::kTrain && c_.model->aux(c_.range.end - 1)) s.auxIn = out;
  }
  st.compute += since(t);
}

void Executor::backward(const Instr& in, bool overlapReduce, RoundStats& st) {
  Slot& s = slot(in);
  if (s.mb != in.mb) throw Error("Backward of mb " + std::to_string(in.mb) + " on a slot holding mb " + std::to_string(s.mb));
  Tensor dy;
  if (c_.coord.lastStage()) {
    dy = c_.loss->backward(s.lossCtx);
  } else {
    const auto tw = Clock::now();
    s.gradWork->wait();
    s.gradWork.reset();
    if (s.reconWork) {
      s.reconWork->wait();
      s.reconWork.reset();
    }
    st.wait += since(tw);
    dy = s.gradBuf;
    s.gradBuf = Tensor();
  }
  const auto t = Clock::now();
  const InputGrad ig = c_.coord.firstStage() ? InputGrad::kSkip : InputGrad::kNeeded;
  useVersion(in.version);
  if (s.stored) {
    s.gout = recomputedBackward(s, dy, ig);
    if (overlapReduce)
      for (auto& b : buckets_) launchBucket(*b);
  } else if (overlapReduce) {
    Tensor g = dy;
    for (size_t i = c_.range.end; i-- > c_.range.begin;) {
      g = c_.model->backward(g, s.ctx, {i, i + 1}, i == c_.range.begin ? ig : InputGrad::kNeeded);
      for (size_t b : blockBuckets_[i - c_.range.begin]) launchBucket(*buckets_[b]);
      for (auto& b : buckets_)
        if (b->launched && b->work) b->work->done();  // lets MPI progress the reduction
    }
    s.gout = g;
  } else {
    s.gout = c_.model->backward(dy, s.ctx, c_.range, ig);
  }
  useVersion(-1);
  s.ctx.clear();
  if (c_.coord.firstStage()) s.reset();
  st.compute += since(t);
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
  st.wait += since(tw);
}

// Training forward that keeps only what the storage mode needs: block by block with a
// throw-away context, keeping block inputs (kInput: the stage's; kReconstruct: those of
// non-reversible blocks, and of the top block when nothing will be sent back to invert from).
void Executor::storedForward(Slot& s, Mode mode) {
  const size_t b0 = c_.range.begin, b1 = c_.range.end, n = b1 - b0;
  s.blockIn.assign(n, Tensor());
  s.rngAt.assign(n, Rng::State{});
  Tensor h = s.in;
  for (size_t i = b0; i < b1; ++i) {
    const size_t k = i - b0;
    bool keep = opts_.storage == Retain::kInput ? k == 0 : !c_.model->block(i).reversible();
    if (opts_.storage == Retain::kReconstruct && i == b1 - 1 && !opts_.reconFromNext) keep = true;
    if (keep) s.blockIn[k] = h;
    s.rngAt[k] = c_.model->dropoutRng().state();
    Ctx scratch;
    h = c_.model->forward(h, scratch, mode, {i, i + 1});
  }
  s.out = h;
  s.stored = true;
}

// Backward of a stored forward: rebuild each block's context (recompute from a kept input, or
// invert a reversible block from its output), then its backward, from the top block down.
// Runs on the weights the Backward names (stashed or current). Leaves the stage's input as it
// now knows it in reconIn, for the previous stage.
Tensor Executor::recomputedBackward(Slot& s, const Tensor& dy, InputGrad ig) {
  const size_t b0 = c_.range.begin, b1 = c_.range.end;
  Rng& rng = c_.model->dropoutRng();
  const Rng::State live = rng.state();
  Tensor g = dy;
  Tensor out = s.reconBuf;
  s.reconBuf = Tensor();
  if (opts_.storage == Retain::kInput) {
    // One recompute of the whole stage from its input, then a normal backward.
    rng.setState(s.rngAt[0]);
    Ctx ctx;
    c_.model->forward(s.blockIn[0], ctx, Mode::kRecompute, c_.range);
    rng.setState(live);
    s.reconIn = s.blockIn[0];
    g = c_.model->backward(g, ctx, c_.range, ig);
  } else {
    for (size_t i = b1; i-- > b0;) {
      const size_t k = i - b0;
      Ctx ctx;
      Tensor in;
      rng.setState(s.rngAt[k]);
      if (s.blockIn[k].defined()) {
        in = s.blockIn[k];
        c_.model->forward(in, ctx, Mode::kRecompute, {i, i + 1});
      } else {
        if (!out.defined())
          throw Error("block " + c_.model->blockName(i) + ": nothing to invert from (mb " + std::to_string(s.mb) + ")");
        in = c_.model->block(i).inverse(out, ctx.child(i));
      }
      rng.setState(live);
      g = c_.model->backward(g, ctx, {i, i + 1}, i == b0 ? ig : InputGrad::kNeeded);
      out = in;
    }
    s.reconIn = out;
  }
  s.blockIn.clear();
  s.rngAt.clear();
  s.stored = false;
  return g;
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
    for (const Tensor& t : s->blockIn) add(t);
    add(s->in);
    add(s->reconIn);
  }
  for (const auto& [v, ts] : stash_)
    for (const Tensor& t : ts) add(t);
  for (const Tensor& t : predicted_) add(t);
  return total;
}

// ---------------------------------------------------------------------------------------------
// Interlocking backprop (seed-interlocking.md 1.2): the stage's auxiliary-head loss and the
// backward passes of individual losses. A stage keeps its forward context until its last
// backward of the micro-batch (ctxUses_), and frees the slot once every input gradient is sent.

void Executor::localLoss(const Instr& in, RoundStats& st) {
  Slot& s = slot(in);
  const int c = c_.coord.stage;
  Sequential* aux = c_.model->aux(c_.range.end - 1);
  if (!aux || s.mb != in.mb || !s.auxIn.defined() || !s.labels.defined())
    throw Error("LocalLoss of mb " + std::to_string(in.mb) + " on stage " + std::to_string(c) +
                ": needs an auxiliary head, the stage output and the labels");
  const auto t = Clock::now();
  // The head reads a detached copy of h_c: its input gradient is dL_c/dh_c, which trains the
  // main net only through a Backward of loss c (local) or a message to c-1 (interlocking).
  Ctx actx, lctx;
  Tensor logits = aux->forward(s.auxIn, actx, Mode::kTrain);
  const LossResult r = c_.loss->forward(logits, s.labels, lctx);
  if (!std::isfinite(r.loss))
    throw NumericError("non-finite auxiliary loss " + std::to_string(r.loss) + " on stage " + std::to_string(c) +
                       ", micro-batch " + std::to_string(in.mb) + " (lower optim.lr?)");
  s.lossDy[c] = aux->backward(c_.loss->backward(lctx), actx, InputGrad::kNeeded);
  s.auxIn = Tensor();
  st.compute += since(t);
}

void Executor::lossBackward(const Instr& in, RoundStats& st) {
  Slot& s = slot(in);
  const int c = c_.coord.stage, j = in.loss;
  if (s.mb != in.mb || s.ctxDone || j < c)
    throw Error(str(in) + " on stage " + std::to_string(c) + ": no forward context of this micro-batch");
  if (j == c && c_.coord.lastStage() && !s.lossDy.count(j)) s.lossDy[j] = c_.loss->backward(s.lossCtx);
  if (j > c && !s.lossDy.count(j)) {
    auto w = s.lossWork.find(j);
    if (w == s.lossWork.end())
      throw Error(str(in) + " on stage " + std::to_string(c) + ": the gradient of loss " + std::to_string(j) + " was never received");
    const auto tw = Clock::now();
    w->second->wait();
    st.wait += since(tw);
    s.lossWork.erase(w);
    s.lossDy[j] = s.lossBuf.at(j);
    s.lossBuf.erase(j);
  }
  auto dyIt = s.lossDy.find(j);
  if (dyIt == s.lossDy.end())
    throw Error(str(in) + " on stage " + std::to_string(c) + ": no gradient of loss " + std::to_string(j));
  const auto t = Clock::now();
  const bool lastUse = --ctxUses_[in.mb] == 0;
  const bool needDx = c > 0 && dxSent_.count(&in);
  Tensor dx;
  if (in.op == Op::kInputGrad) {
    dx = inputOnlyBackward(*c_.model, dyIt->second, s.ctx, c_.range);
  } else {
    Tensor dy = dyIt->second;
    float w = 1.f;
    for (const VjpItem& it : opts_.interlock.plan(c))
      if (it.params && it.loss == j) w = it.weight;
    if (w != 1.f) {  // mean mode: the step's gradient is (dL_c + dL_{c+1}) / 2
      Tensor scaled = c_.be->empty(dy.shape());
      c_.be->copy(dy, scaled);
      c_.be->scale(scaled, w);
      dy = scaled;
    }
    Ctx copy;
    if (!lastUse) copy = s.ctx;  // later passes still need the context
    dx = c_.model->backward(dy, lastUse ? s.ctx : copy, c_.range, needDx ? InputGrad::kNeeded : InputGrad::kSkip);
  }
  if (needDx) s.lossDx[j] = dx;
  if (lastUse) {
    s.ctx.clear();
    s.ctxDone = true;
    if (s.lossDx.empty()) s.reset();
  }
  st.compute += since(t);
}

}  // namespace sw
