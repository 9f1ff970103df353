// The DTP step interpreter. Weight broadcasts are posted without blocking as soon as this rank's
// own feedback training is done and are waited for only before the targets need them, so a rank
// whose blocks finish early does not hold back the broadcasts of blocks that are already done.
#include "dtp/DtpEngine.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include "core/Error.h"

namespace sw::dtp {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void hashInto(uint64_t& h, Backend& be, const Tensor& t) {
  const Tensor host = be.toHost(t);
  const auto* p = reinterpret_cast<const unsigned char*>(host.data());
  for (size_t i = 0; i < host.bytes(); ++i) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
}
}  // namespace

DtpEngine::DtpEngine(Model& f, FeedbackNet& g, Hyper hp, const OptimConfig& forwardOpt, Communicator& world,
                     std::vector<int> owner)
    : f_(f), g_(g), hp_(std::move(hp)), world_(world), owner_(std::move(owner)) {
  info_.reserve(size_t(g_.numBlocks()));
  for (int i = 0; i < g_.numBlocks(); ++i) info_.push_back(g_.block(i).info());
  SW_CHECK(owner_.size() == size_t(g_.numBlocks()), "one owner per feedback block");
  program_ = buildDtpProgram(world_.rank(), world_.size(), owner_);
  fopt_ = std::make_unique<Optimizer>(f_.backend(), f_.params(), forwardOpt);
  gopt_.resize(owner_.size());
  // Feedback SGD: momentum, no weight decay, no dampening, no Nesterov (spec 2.1.2e); weights
  // only (the biases get no gradient). State exists only on the owner (spec 7 E10).
  const OptimConfig fb{.kind = OptimKind::kSgd, .momentum = hp_.momentum, .dampening = 0.f, .weightDecay = 0.f};
  for (size_t i = 1; i < owner_.size(); ++i)
    if (owner_[i] == world_.rank())
      gopt_[i] = std::make_unique<Optimizer>(f_.backend(), std::vector<Param*>{&g_.block(int(i)).weight()}, fb);
}

StepStats DtpEngine::step(const Batch& batch, int64_t step, float lr) {
  Backend& be = f_.backend();
  StepStats st;
  st.drlLoss.assign(owner_.size(), 0.0);
  std::vector<WorkPtr> pending;
  Tensor x, labels;
  Targets targets;
  auto t = Clock::now();
  for (const DtpInstr& in : program_) {
    switch (in.op) {
      case Op::kLoad:
        x = be.fromHost(batch.x);
        labels = be.fromHost(batch.labels);
        st.seen = batch.size();
        break;
      case Op::kForward:
        t = Clock::now();
        forwardPass(f_, info_, x, labels, fp_);
        st.forward += since(t);
        break;
      case Op::kTrainFeedback: {
        t = Clock::now();
        const int i = in.layer;
        const FeedbackStats fs = trainFeedback(g_.block(i), f_.block(size_t(i)), info_[size_t(i)], fp_, i, hp_,
                                               *gopt_.at(size_t(i)), step);
        st.drlLoss[size_t(i)] = fs.meanLoss;
        st.feedback += since(t);
        break;
      }
      case Op::kSyncFeedback:
        // In place: the owner sends its freshly trained weight, the others receive it. Biases
        // never change (zero L-DRL gradient), so they are not sent.
        pending.push_back(tensors_->broadcast(g_.block(in.layer).weight().value, in.owner));
        break;
      case Op::kComputeTargets:
        t = Clock::now();
        waitAll(pending);
        st.sync += since(t);
        t = Clock::now();
        targets = computeTargets(f_, g_, fp_, hp_.beta);
        st.ce = targets.ce;
        st.correct = targets.correct;
        break;
      case Op::kLocalLoss:
        st.localLoss = localLosses(f_, fp_, targets);
        if (bpAngleEvery_ > 0 && step % bpAngleEvery_ == 0) st.bp = compareWithBackprop(f_, x, labels, hp_.beta);
        break;
      case Op::kOptimizerStep:
        fopt_->step(lr);
        st.update += since(t);
        break;
      default:
        throw Error("DTP engine: unexpected instruction " + str(in));
    }
  }
  fp_ = ForwardPass{};  // release the step's activations
  if (!std::isfinite(st.ce))
    throw NumericError("DTP: non-finite training loss at step " + std::to_string(step) +
                       " (lower optim.lr or dtp.beta)");
  return st;
}

uint64_t DtpEngine::weightsHash() {
  Backend& be = f_.backend();
  uint64_t h = 0xCBF29CE484222325ull;
  for (Param* p : f_.params()) hashInto(h, be, p->value);
  for (Param* p : g_.params()) hashInto(h, be, p->value);
  return h;
}

bool DtpEngine::checkAndResync() {
  if (world_.size() == 1) return false;
  const uint64_t h = weightsHash();
  // Two exact 32-bit halves per reduction (a double holds them exactly).
  std::vector<double> hi{double(h >> 32), double(h & 0xFFFFFFFFull)}, lo = hi;
  world_.allReduceValues(hi, ReduceOp::kMax);
  world_.allReduceValues(lo, ReduceOp::kMin);
  if (hi == lo) return false;
  std::vector<WorkPtr> w;
  auto& fst = fopt_->state();
  const auto fparams = f_.params();
  for (size_t i = 0; i < fparams.size(); ++i) {
    w.push_back(tensors_->broadcast(fparams[i]->value, 0));
    // Momentum buffers exist after the first step on every rank alike.
    if (fst[i].buf.defined()) w.push_back(tensors_->broadcast(fst[i].buf, 0));
  }
  for (Param* p : g_.params()) w.push_back(tensors_->broadcast(p->value, 0));
  waitAll(w);
  return true;
}

}  // namespace sw::dtp
