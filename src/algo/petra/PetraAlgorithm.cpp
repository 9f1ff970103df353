// The PETRA plug-in: rank-count and mode rules, the delayed pipeline's learning-rate rule, and
// the executor ops that keep less than a context (Forward keeping block inputs, Backward
// recomputing or inverting them, the kTagRecon messages that carry a stage's output back).
#include "algo/petra/PetraAlgorithm.h"

#include "algo/backprop/Backprop.h"
#include "core/Error.h"

namespace sw {
namespace {

// What a training forward keeps for its backward (seed-petra.md 1.4). The last stage always
// keeps its context: it runs its backward in the same tick.
enum class Retain {
  kContext,      // every layer's saved tensors (backprop; store-vjp)
  kInput,        // the stage's input; the backward recomputes the forward (DSP, stashing)
  kReconstruct,  // inputs of non-reversible blocks only; reversible blocks are inverted from
                 // the output the next stage sends back (PETRA)
};

struct PetraSlot : SlotState {
  // Per block of the stage, the input kept (if any) and the dropout stream's state at its
  // forward, so a recompute draws the same masks.
  std::vector<Tensor> blockIn;
  std::vector<Rng::State> rngAt;
  bool stored = false;  // forward kept blockIn instead of ctx
  Tensor reconIn;       // this stage's input as it knows it (sent back on kTagRecon)
  Tensor reconBuf;      // the output as the next stage knows it (received)
  WorkPtr reconWork;
  void reset() override { *this = PetraSlot{}; }
  void held(const std::function<void(const Tensor&)>& add) const override {
    for (const Tensor& t : blockIn) add(t);
    add(reconIn);
  }
};

class Petra : public Algorithm {
 public:
  explicit Petra(const TrainConfig& cfg) : Algorithm(cfg), delayed_(!cfg.petra.synchronous) {
    // Synchronous runs use the mp schedule: no delay, nothing sent back.
    sched_ = delayed_ ? makeDelayedSchedule() : makeModelParallelSchedule();
    storage_ = cfg.petra.storeContext ? Retain::kContext : cfg.petra.storeInput ? Retain::kInput : Retain::kReconstruct;
  }
  ScheduleSpec plan(int world) const override {
    const PetraSection& p = cfg_.petra;
    if (!p.storeContext && !p.storeInput && p.storeParams)
      throw ConfigError("petra.store_params = true with petra.store_input = false (reconstruct the input but "
                        "compute on stashed weights) is not supported: set petra.store_input = true as well");
    if (delayed_ && cfg_.pipe.microbatches != 1)
      throw ConfigError("train.algo = petra: a micro-batch is one mini-batch (train.batch_size), "
                        "pipe.microbatches must be 1 (use train.accum_steps to accumulate)");
    ScheduleSpec s = shape(world, stagesOr(world, world));
    DelayedParams& d = s.params.set<DelayedParams>();
    d.accumSteps = cfg_.train.accumSteps;
    d.stashParams = p.storeParams || p.storeContext;
    return s;
  }
  void completeSpec(ScheduleSpec& s, Model& model, const std::vector<BlockRange>& parts) const override {
    // Stage k inverts its top block from what stage k+1 sends back when that block is reversible.
    // (The synchronous mp schedule sends nothing back: each stage then keeps its top block's
    // input and inverts the reversible blocks below it.)
    std::vector<bool>& recon = s.params.set<DelayedParams>().reconFrom;
    recon.assign(size_t(s.stages), false);
    if (storage_ == Retain::kReconstruct && delayed_)
      for (int k = 0; k + 1 < s.stages; ++k) recon[size_t(k)] = model.block(parts[size_t(k)].end - 1).reversible();
  }
  void attach(AlgoEnv& env) override {
    reconFromNext_ = env.spec->params.get<DelayedParams>().reconFrom.at(size_t(env.coord.stage));
  }
  Program build(const RankCoord& me, const ScheduleSpec& spec) const override { return sched_->build(me.stage, spec); }
  bool flushed() const override { return !delayed_; }
  int roundBatches(int64_t nb) const override {
    if (!delayed_) return cfg_.train.accumSteps;
    const int drain = cfg_.petra.drainEvery;
    return int(drain > 0 ? std::min<int64_t>(drain, nb) : nb);
  }
  void rates(const RoundPos& p, RoundInputs& ri) const override {
    if (!delayed_) return flushedRates(p, ri);
    // Step g of the round applies the gradients of mini-batches g k .. g k + k - 1.
    const int k = cfg_.train.accumSteps, batches = p.batches, epoch = p.epoch;
    const int64_t first = p.firstBatch, nb = p.batchesPerEpoch;
    const LrSchedule* lr = p.lr;
    ri.lr = [=](int g) { return lr->at(epoch, first + std::min(int64_t(g) * k + k - 1, int64_t(batches) - 1), nb); };
    ri.averageByCount = cfg_.train.accumAverage;
  }
  std::unique_ptr<SlotState> newSlotState() const override { return std::make_unique<PetraSlot>(); }
  void registerOps(OpTable& t) override;

 private:
  void forward(OpCall& c);
  void backward(OpCall& c, const OpHandler& base);
  void storedForward(Executor& ex, Slot& s, const Tensor& x, Mode mode);
  Tensor recomputedBackward(Executor& ex, Slot& s, const Tensor& dy, InputGrad ig);

  bool delayed_;
  Retain storage_;
  bool reconFromNext_ = false;  // kReconstruct: the next stage sends back this stage's output
  std::unique_ptr<Schedule> sched_;
};

void Petra::registerOps(OpTable& t) {
  if (storage_ == Retain::kContext) return;  // the shared ops keep every context already
  t.set(Op::kForward, [this](OpCall& c) { forward(c); }, OpTime::kCompute);
  t.set(Op::kBackward, [this, base = t.get(Op::kBackward)](OpCall& c) { backward(c, base); }, OpTime::kCompute);
  t.set(Op::kRecvGrad, [base = t.get(Op::kRecvGrad)](OpCall& c) {
    if (c.in.tag != kTagRecon) return base(c);
    Slot& s = c.ex.slot(c.in);
    PetraSlot& p = s.state<PetraSlot>();
    p.reconBuf = c.ex.stage().be->empty(c.ex.outputShape(s.rows));
    p.reconWork = c.ex.stage().pipe->recv(p.reconBuf, c.in.peer, c.in.tag);
  });
  t.set(Op::kSendGrad, [base = t.get(Op::kSendGrad)](OpCall& c) {
    if (c.in.tag != kTagRecon) return base(c);
    PetraSlot& p = c.ex.slot(c.in).state<PetraSlot>();
    if (!p.reconIn.defined()) throw Error("no input of mb " + std::to_string(c.in.mb) + " to send back");
    c.ex.postSend(p.reconIn, c.in.peer, c.in.tag, c.st);
    p.reconIn = Tensor();
  });
}

void Petra::forward(OpCall& c) {
  Executor& ex = c.ex;
  Slot& s = ex.slot(c.in);
  if (s.mb != c.in.mb)
    throw Error("Forward of mb " + std::to_string(c.in.mb) + " on a slot holding mb " + std::to_string(s.mb));
  const Tensor x = ex.takeInput(s, c.st);
  const Mode mode = Executor::modeOf(c.ri.phase);
  const StageContext& sc = ex.stage();
  ex.useVersion(c.in.version);
  Tensor out;
  if (mode == Mode::kTrain && !sc.coord.lastStage()) {
    storedForward(ex, s, x, mode);
    out = s.out;
  } else {
    Ctx evalCtx;
    out = sc.model->forward(x, mode == Mode::kTrain ? s.ctx : evalCtx, mode, sc.range);
    if (mode == Mode::kTrain) s.state<PetraSlot>().reconIn = x;  // last stage
  }
  ex.useVersion(-1);
  ex.finishForward(c.in, s, out, mode, c.st);
}

void Petra::backward(OpCall& c, const OpHandler& base) {
  Executor& ex = c.ex;
  Slot& s = ex.slot(c.in);
  PetraSlot& p = s.state<PetraSlot>();
  if (!p.stored) return base(c);  // the last stage kept its context
  if (s.mb != c.in.mb)
    throw Error("Backward of mb " + std::to_string(c.in.mb) + " on a slot holding mb " + std::to_string(s.mb));
  const Tensor dy = ex.outputGrad(s, c.st);
  ex.wait(p.reconWork, c.st);
  const StageContext& sc = ex.stage();
  ex.useVersion(c.in.version);
  s.gout = recomputedBackward(ex, s, dy, sc.coord.firstStage() ? InputGrad::kSkip : InputGrad::kNeeded);
  if (c.overlapReduce) ex.launchAllBuckets();
  ex.useVersion(-1);
  s.ctx.clear();
  if (sc.coord.firstStage()) s.reset();
}

// Training forward that keeps only what the storage mode needs: block by block with a
// throw-away context, keeping block inputs (kInput: the stage's; kReconstruct: those of
// non-reversible blocks, and of the top block when nothing will be sent back to invert from).
void Petra::storedForward(Executor& ex, Slot& s, const Tensor& x, Mode mode) {
  const StageContext& sc = ex.stage();
  PetraSlot& p = s.state<PetraSlot>();
  const size_t b0 = sc.range.begin, b1 = sc.range.end, n = b1 - b0;
  p.blockIn.assign(n, Tensor());
  p.rngAt.assign(n, Rng::State{});
  Tensor h = x;
  for (size_t i = b0; i < b1; ++i) {
    const size_t k = i - b0;
    bool keep = storage_ == Retain::kInput ? k == 0 : !sc.model->block(i).reversible();
    if (storage_ == Retain::kReconstruct && i == b1 - 1 && !reconFromNext_) keep = true;
    if (keep) p.blockIn[k] = h;
    p.rngAt[k] = sc.model->dropoutRng().state();
    Ctx scratch;
    h = sc.model->forward(h, scratch, mode, {i, i + 1});
  }
  s.out = h;
  p.stored = true;
}

// Backward of a stored forward: rebuild each block's context (recompute from a kept input, or
// invert a reversible block from its output), then its backward, from the top block down.
// Runs on the weights the Backward names (stashed or current). Leaves the stage's input as it
// now knows it in reconIn, for the previous stage.
Tensor Petra::recomputedBackward(Executor& ex, Slot& s, const Tensor& dy, InputGrad ig) {
  const StageContext& sc = ex.stage();
  PetraSlot& p = s.state<PetraSlot>();
  Model& m = *sc.model;
  const size_t b0 = sc.range.begin, b1 = sc.range.end;
  Rng& rng = m.dropoutRng();
  const Rng::State live = rng.state();
  Tensor g = dy;
  Tensor out = p.reconBuf;
  p.reconBuf = Tensor();
  if (storage_ == Retain::kInput) {
    // One recompute of the whole stage from its input, then a normal backward.
    rng.setState(p.rngAt[0]);
    Ctx ctx;
    m.forward(p.blockIn[0], ctx, Mode::kRecompute, sc.range);
    rng.setState(live);
    p.reconIn = p.blockIn[0];
    g = m.backward(g, ctx, sc.range, ig);
  } else {
    for (size_t i = b1; i-- > b0;) {
      const size_t k = i - b0;
      Ctx ctx;
      Tensor in;
      rng.setState(p.rngAt[k]);
      if (p.blockIn[k].defined()) {
        in = p.blockIn[k];
        m.forward(in, ctx, Mode::kRecompute, {i, i + 1});
      } else {
        if (!out.defined())
          throw Error("block " + m.blockName(i) + ": nothing to invert from (mb " + std::to_string(s.mb) + ")");
        in = m.block(i).inverse(out, ctx.child(i));
      }
      rng.setState(live);
      g = m.backward(g, ctx, {i, i + 1}, i == b0 ? ig : InputGrad::kNeeded);
      out = in;
    }
    p.reconIn = out;
  }
  p.blockIn.clear();
  p.rngAt.clear();
  p.stored = false;
  return g;
}

}  // namespace

std::unique_ptr<Algorithm> makePetra(const TrainConfig& cfg) { return std::make_unique<Petra>(cfg); }

}  // namespace sw
