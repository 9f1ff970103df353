// The executor: one switch over instructions. Ordering rules that keep it deadlock-free are the
// Validator's: posting a send or receive never blocks; only consuming received data (Forward,
// Backward) or a collective (ReduceGrads) waits, and every wait is bounded by the communicator's
// watchdog. Received tensors land in host buffers (MPI is host-only here) and are moved to the
// backend's device when consumed.
#include "schedule/Executor.h"

#include <algorithm>
#include <cmath>

#include "core/Error.h"

namespace sw {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
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
}

struct Executor::Slot {
  int mb = -1;
  int64_t rows = 0;
  Tensor in, labels, out, gin, gout;
  Tensor actBuf, gradBuf;  // host receive buffers
  WorkPtr actWork, gradWork;
  Ctx ctx, lossCtx;
  void reset() { *this = Slot{}; }
};

struct Executor::Bucket {
  std::vector<Param*> params;
  Tensor flat;  // host
  WorkPtr work;
  bool launched = false;
};

Executor::Executor(StageContext ctx, ExecutorOptions opts) : c_(ctx), opts_(opts), t0_(Clock::now()) {
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
      cur->flat = Tensor::empty(Shape({n}));
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

void Executor::reapSends() {
  size_t k = 0;
  for (auto& w : sends_)
    if (!w->done()) sends_[k++] = std::move(w);
  sends_.resize(k);
}

void Executor::useVersion(int version) {
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
    const bool traced = opts_.trace && (in.op == Op::kForward || in.op == Op::kBackward ||
                                        in.op == Op::kReduceGrads || in.op == Op::kOptimizerStep);
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
    else if (in.op == Op::kBackward) backward(in, overlap, st);
    else dispatch(in, ri, st);
    if (traced) trace_.push_back({in, tStart, since(t0_)});
    for (auto it = stash_.begin(); it != stash_.end();) {
      auto lu = lastUse.find(it->first);
      const bool dead = it->first != swappedVersion_ && (lu == lastUse.end() || lu->second <= pc);
      it = dead ? stash_.erase(it) : std::next(it);
    }
    if (!sends_.empty()) reapSends();
  }
  const auto tw = Clock::now();
  waitAll(sends_);
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
      if (c_.coord.lastStage()) s.labels = c_.be->fromHost(b.labels);
      break;
    }
    case Op::kRecvAct: {
      Slot& s = slot(in);
      s.mb = in.mb;
      s.rows = ri.rows(in.mb);
      s.actBuf = Tensor::empty(inputShape(s.rows));
      s.actWork = c_.pipe->recv(s.actBuf, in.peer, in.tag);
      break;
    }
    case Op::kRecvGrad: {
      Slot& s = slot(in);
      s.gradBuf = Tensor::empty(outputShape(s.rows));
      s.gradWork = c_.pipe->recv(s.gradBuf, in.peer, in.tag);
      break;
    }
    case Op::kSendAct: {
      Slot& s = slot(in);
      sends_.push_back(c_.pipe->send(c_.be->toHost(s.out), in.peer, in.tag));
      s.out = Tensor();
      if (ri.phase != Phase::kTrain) s.reset();
      break;
    }
    case Op::kSendGrad: {
      Slot& s = slot(in);
      sends_.push_back(c_.pipe->send(c_.be->toHost(s.gout), in.peer, in.tag));
      s.reset();
      break;
    }
    case Op::kReduceGrads:
      reduceGrads(st);
      break;
    case Op::kOptimizerStep: {
      const auto t = Clock::now();
      if (c_.rule) c_.rule->step(ri.lr(st.updates), ri.gradScale);
      else c_.opt->step(ri.lr(st.updates), ri.gradScale);
      c_.model->zeroGrad(c_.range);
      ++version_;
      ++st.updates;
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
    s.in = c_.be->fromHost(s.actBuf);
    s.actBuf = Tensor();
  }
  const auto t = Clock::now();
  const Mode mode = ri.phase == Phase::kTrain       ? Mode::kTrain
                    : ri.phase == Phase::kCalibrate ? Mode::kCalibrate
                                                    : Mode::kEval;
  useVersion(in.version);
  Ctx evalCtx;
  Tensor out = c_.model->forward(s.in, mode == Mode::kTrain ? s.ctx : evalCtx, mode, c_.range);
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
    st.wait += since(tw);
    dy = c_.be->fromHost(s.gradBuf);
    s.gradBuf = Tensor();
  }
  const auto t = Clock::now();
  const InputGrad ig = c_.coord.firstStage() ? InputGrad::kSkip : InputGrad::kNeeded;
  useVersion(in.version);
  if (overlapReduce) {
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
    if (p->gradFresh) dst.fill(0.f);
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

}  // namespace sw
