// The interlocking / local plug-in (seed-interlocking.md): the component split, the auxiliary
// heads, the executor ops of the stage schedule (aux-head loss, per-loss backward passes and
// their messages) and the one-process program (InterlockingLoop's two halves as Forward and
// Backward).
#include "algo/interlocking/InterlockingAlgorithm.h"

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "algo/interlocking/InterlockingLoop.h"
#include "core/Error.h"
#include "core/Log.h"
#include "core/Strings.h"
#include "nn/AuxHead.h"

namespace sw {
namespace {

// Stream of the seed that initialises component c's aux head: the same on every rank.
constexpr uint64_t kAuxInitStream = 0x1a0000;
const char* kSplitKey = "interlocking.blocks_per_component";

// "5,4,4,rest": block counts of components 0..K-2, the last takes the rest.
std::vector<BlockRange> parseSplit(const std::string& v, size_t numBlocks, const std::string& model) {
  const std::vector<std::string> items = splitTrimmed(v, ',');
  auto bad = [&](const std::string& why) {
    return ConfigError(std::string(kSplitKey) + " = '" + v + "': " + why + " (e.g. 5,4,4,rest; model " + model + " has " +
                       std::to_string(numBlocks) + " blocks, the stem and the output head one each)");
  };
  if (items.empty() || items.back() != "rest") throw bad("must end in 'rest'");
  std::vector<BlockRange> parts;
  size_t begin = 0;
  for (size_t i = 0; i + 1 < items.size(); ++i) {
    const std::optional<int64_t> n = parseInt(items[i]);
    if (!n || *n <= 0) throw bad("'" + items[i] + "' is not a positive block count");
    if (begin + size_t(*n) >= numBlocks) throw bad("leaves no block for 'rest'");
    parts.push_back({begin, begin + size_t(*n)});
    begin += size_t(*n);
  }
  parts.push_back({begin, numBlocks});
  return parts;
}

// interlocking.aux: one architecture for every aux head, or a comma list with one per component
// but the last (feature maps of different kinds: "conv16_bn_gbpl_fc, conv32_bn_gbpl_fc, fc").
std::vector<std::string> auxList(const std::string& v) { return splitTrimmed(v, ','); }

std::string auxFor(const std::vector<std::string>& list, size_t c, size_t components) {
  if (list.size() == 1) return list[0];
  if (list.size() + 1 != components)
    throw ConfigError("interlocking.aux lists " + std::to_string(list.size()) + " architectures for " +
                      std::to_string(components) + " components: give one for all, or one per component but the last (" +
                      std::to_string(components - 1) + ")");
  return list[c];
}

Shape sampleOf(const Shape& batchShape) {
  std::vector<int64_t> d(batchShape.dims().begin() + 1, batchShape.dims().end());
  return Shape(d);
}


// Per micro-batch: the output for the aux head, and per loss j the gradient w.r.t. the output
// (own loss or received) and w.r.t. the input (to send).
struct LossSlot : SlotState {
  Tensor auxIn;
  std::map<int, Tensor> lossDy, lossDx, lossBuf;
  std::map<int, WorkPtr> lossWork;
  bool ctxDone = false;
  void reset() override { *this = LossSlot{}; }
};

class Interlocking : public Algorithm {
 public:
  Interlocking(const TrainConfig& cfg, InterlockingKind kind)
      : Algorithm(cfg), local_(kind == InterlockingKind::kLocal), sched_(makeInterlockingSchedule()) {}

  ScheduleSpec plan(int world) const override {
    const std::string& algo = cfg_.train.algo;
    if (cfg_.pipe.microbatches != 1 || cfg_.train.accumSteps != 1)
      throw ConfigError("train.algo = " + algo + " updates after every mini-batch: "
                        "pipe.microbatches and train.accum_steps must be 1");
    ScheduleSpec s = shape(world, stagesOr(world, world));
    InterlockParams& ip = s.params.set<InterlockParams>();
    ip.distance = local_ ? 0 : cfg_.interlocking.n - 1;
    ip.pairwise = parsePairwiseMode(cfg_.interlocking.pairwiseMode);
    s.boundedSends = true;
    if (local_ && ip.pairwise != PairwiseMode::kNextOnly)
      throw ConfigError("interlocking.pairwise_mode = " + cfg_.interlocking.pairwiseMode +
                        " needs train.algo = interlocking with interlocking.n = 2, not train.algo = local");
    InterlockRule{.components = s.stages, .distance = ip.distance, .mode = ip.pairwise}.validate("train.algo = " + algo);
    if (s.stages == 1 && world != 1)
      throw ConfigError("train.algo = " + algo + " with pipe.stages = 1 runs every component in one process: run it on "
                        "one rank, or set pipe.stages = " + std::to_string(world) + " for one component per rank");
    return s;
  }
  void checkModel(Model& model, const ScheduleSpec& spec) override;
  std::string partition() const override { return partition_; }
  void attach(AlgoEnv& env) override;
  Program build(const RankCoord& me, const ScheduleSpec& spec) const override {
    return spec.stages == 1 && !components_.empty() ? oneProcessProgram(spec) : sched_->build(me.stage, spec);
  }
  bool flushed() const override { return false; }
  int roundBatches(int64_t nb) const override {
    const int drain = cfg_.interlocking.drainEvery;
    return int(drain > 0 ? std::min<int64_t>(drain, nb) : nb);
  }
  void rates(const RoundPos& pos, RoundInputs& ri) const override { perStepRates(pos, ri); }
  std::unique_ptr<SlotState> newSlotState() const override { return std::make_unique<LossSlot>(); }
  void registerOps(OpTable& t) override;
  void beginRun(const Program& program) override;

  const std::vector<BlockRange>& components() const { return components_; }

 private:
  // One process: per mini-batch Load + Forward (every component and loss), Backward (every
  // component's passes), OptimizerStep (main net and aux heads).
  Program oneProcessProgram(const ScheduleSpec& spec) const {
    Program p;
    for (int mb = 0; mb < spec.microbatches; ++mb) {
      p.push_back({{.op = Op::kLoad, .mb = mb, .slot = 0}, {.op = Op::kForward, .mb = mb, .slot = 0}});
      p.push_back({{.op = Op::kBackward, .mb = mb, .slot = 0}});
      p.push_back(detail::updateStep(spec));
    }
    return p;
  }
  void localLoss(OpCall& c);
  void lossBackward(OpCall& c);

  bool local_;
  std::unique_ptr<Schedule> sched_;
  std::vector<BlockRange> components_;
  std::string partition_ = cfg_.pipe.partition;
  InterlockRule rule_;
  std::unique_ptr<InterlockingLoop> loop_;  // pipe.stages = 1
  std::map<int, int> ctxUses_;              // backward passes left per mb
  std::set<const Instr*> dxSent_;           // backward passes whose dx is sent
};

void Interlocking::checkModel(Model& model, const ScheduleSpec& spec) {
  const std::string& split = cfg_.interlocking.blocksPerComponent;
  const size_t nb = model.numBlocks();
  std::vector<size_t> ends;  // blocks an aux head may read (validated below)
  const std::vector<std::string> aux = auxList(cfg_.interlocking.aux);
  if (!split.empty()) {
    components_ = parseSplit(split, nb, cfg_.model.name);
    if (spec.stages > 1) {
      if (int(components_.size()) != spec.stages)
        throw ConfigError(std::string(kSplitKey) + " = " + split + " gives " + std::to_string(components_.size()) +
                          " components but pipe.stages = " + std::to_string(spec.stages) +
                          " (one component per rank; pipe.stages = 1 runs them all in one process)");
      if (!cfg_.pipe.partition.empty())
        throw ConfigError(std::string(kSplitKey) + " and pipe.partition both set: give the split once");
      std::string cut;
      for (size_t c = 1; c < components_.size(); ++c) {
        if (c > 1) cut += ',';
        cut += std::to_string(components_[c].begin);
      }
      partition_ = cut;
    }
    for (size_t c = 0; c + 1 < components_.size(); ++c) ends.push_back(components_[c].end - 1);
  } else if (spec.stages == 1) {
    components_ = {BlockRange{0, nb}};
  } else if (aux.size() == 1) {
    for (size_t i = 0; i + 1 < nb; ++i) ends.push_back(i);  // the partition is chosen later
  }
  // Every aux head the run can build must take its block's output (bad strings fail here,
  // on every rank, before anything runs; per-component lists with a partition still to be
  // measured are checked when the heads are built).
  Rng scratch(0);
  const size_t K = components_.empty() ? size_t(spec.stages) : components_.size();
  for (size_t k = 0; k < ends.size(); ++k)
    (void)buildAuxHead(model.backend(), auxFor(aux, aux.size() == 1 ? 0 : k, K),
                       sampleOf(model.blockOutputShape(ends[k], 1)), model.classes(), scratch,
                       "interlocking.aux (on block " + model.blockName(ends[k]) + ")");
  if (aux.size() > 1) (void)auxFor(aux, 0, K);  // the count
}

void Interlocking::attach(AlgoEnv& env) {
  const ScheduleSpec& spec = *env.spec;
  Model& model = *env.model;
  if (spec.stages > 1) components_ = *env.parts;
  const int K = int(components_.size());
  const InterlockParams& ip = spec.params.get<InterlockParams>();
  rule_ = InterlockRule{.components = K, .distance = ip.distance, .mode = ip.pairwise};
  rule_.validate("train.algo = " + cfg_.train.algo);
  int64_t auxParams = 0;
  for (int c = 0; c + 1 < K; ++c) {
    if (spec.stages > 1 && c != env.coord.stage) continue;  // a rank holds its own head only
    Rng rng = Rng::derive(cfg_.train.seed, kAuxInitStream + uint64_t(c));
    const size_t last = components_[size_t(c)].end - 1;
    Sequential& head = model.attachAux(
        last, buildAuxHead(*env.be, auxFor(auxList(cfg_.interlocking.aux), size_t(c), size_t(K)),
                           sampleOf(model.blockOutputShape(last, 1)), model.classes(), rng,
                           "interlocking.aux (component " + std::to_string(c) + ")"));
    std::vector<Param*> ps;
    head.collectParams(ps);
    for (Param* p : ps) auxParams += p->value.numel();
  }
  if (spec.stages == 1) {
    std::vector<BlockRange> comps;
    for (const BlockRange& r : components_) comps.push_back({r.begin, r.end});
    loop_ = std::make_unique<InterlockingLoop>(model, comps, rule_);
  } else {
    env.exec->boundedSends = true;
  }
  if (env.world->rank() == 0) {
    std::ostringstream os;
    for (int c = 0; c < K; ++c)
      os << (c ? ", " : "") << "c" << c << " = blocks " << components_[size_t(c)].begin << ".."
         << components_[size_t(c)].end - 1;
    const int n = ip.distance + 1;
    SW_INFO(cfg_.train.algo << ": " << K << " components (" << os.str() << "), "
                            << (ip.distance == 0 ? std::string("local") : std::to_string(n) + "-wise")
                            << (ip.pairwise != PairwiseMode::kNextOnly ? std::string(" ") + pairwiseModeName(ip.pairwise) : "")
                            << (ip.distance >= K - 1 && K > 1 ? " (= global backprop)" : "") << ", aux head '"
                            << cfg_.interlocking.aux << "'"
                            << (spec.stages == 1 ? " (" + std::to_string(auxParams) + " aux parameters)" : "")
                            << (spec.stages == 1 ? ", all in this process" : ", one per rank"));
    if (K == 1) SW_INFO(cfg_.train.algo << " with one component is plain backprop (set " << kSplitKey << ")");
  }
}

void Interlocking::registerOps(OpTable& t) {
  if (loop_) {
    // One process: InterlockingLoop's halves (evaluation goes through the shared forward).
    t.set(Op::kForward, [this, base = t.get(Op::kForward)](OpCall& c) {
      if (c.ri.phase != Phase::kTrain) return base(c);
      Slot& s = c.ex.slot(c.in);
      const Tensor x = c.ex.takeInput(s, c.st);
      const LossResult r = loop_->forward(x, s.labels);
      if (!std::isfinite(r.loss))
        throw NumericError("non-finite training loss " + std::to_string(r.loss) + " on micro-batch " +
                           std::to_string(c.in.mb) + " (lower optim.lr?)");
      c.st.lossSum += double(r.loss) * double(s.rows);
      c.st.correct += r.correct;
      c.st.seen += s.rows;
    }, OpTime::kCompute);
    t.set(Op::kBackward, [this](OpCall& c) {
      loop_->backward();
      c.ex.slot(c.in).reset();
    }, OpTime::kCompute);
    return;
  }
  t.set(Op::kForward, [base = t.get(Op::kForward)](OpCall& c) {
    base(c);
    const StageContext& sc = c.ex.stage();
    if (c.ri.phase == Phase::kTrain && !sc.coord.lastStage() && sc.model->aux(sc.range.end - 1)) {
      Slot& s = c.ex.slot(c.in);
      s.state<LossSlot>().auxIn = s.out;
    }
  }, OpTime::kCompute);
  t.set(Op::kLocalLoss, [this](OpCall& c) { localLoss(c); }, OpTime::kCompute);
  t.set(Op::kInputGrad, [this](OpCall& c) { lossBackward(c); }, OpTime::kCompute);
  t.set(Op::kBackward, [this, base = t.get(Op::kBackward)](OpCall& c) {
    if (c.in.loss < 0) return base(c);
    lossBackward(c);
  }, OpTime::kCompute);
  t.set(Op::kRecvGrad, [base = t.get(Op::kRecvGrad)](OpCall& c) {
    if (c.in.loss < 0) return base(c);
    Slot& s = c.ex.slot(c.in);
    LossSlot& l = s.state<LossSlot>();
    Tensor& buf = l.lossBuf[c.in.loss];
    buf = c.ex.stage().be->empty(c.ex.outputShape(s.rows));
    l.lossWork[c.in.loss] = c.ex.stage().pipe->recv(buf, c.in.peer, c.in.tag);
  });
  t.set(Op::kSendGrad, [base = t.get(Op::kSendGrad)](OpCall& c) {
    if (c.in.loss < 0) return base(c);
    Slot& s = c.ex.slot(c.in);
    LossSlot& l = s.state<LossSlot>();
    auto it = l.lossDx.find(c.in.loss);
    if (it == l.lossDx.end())
      throw Error("SendGrad of loss " + std::to_string(c.in.loss) + " for mb " + std::to_string(c.in.mb) +
                  ": no such input gradient on stage " + std::to_string(c.ex.stage().coord.stage));
    c.ex.postSend(it->second, c.in.peer, c.in.tag, c.st);
    l.lossDx.erase(it);
    if (l.ctxDone && l.lossDx.empty()) s.reset();
  });
}

// A stage keeps its forward context until its last backward of the micro-batch (ctxUses_), and
// frees the slot once every input gradient is sent.
void Interlocking::beginRun(const Program& program) {
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
}

void Interlocking::localLoss(OpCall& c) {
  const StageContext& sc = c.ex.stage();
  Slot& s = c.ex.slot(c.in);
  LossSlot& l = s.state<LossSlot>();
  const int k = sc.coord.stage;
  Sequential* aux = sc.model->aux(sc.range.end - 1);
  if (!aux || s.mb != c.in.mb || !l.auxIn.defined() || !s.labels.defined())
    throw Error("LocalLoss of mb " + std::to_string(c.in.mb) + " on stage " + std::to_string(k) +
                ": needs an auxiliary head, the stage output and the labels");
  // The head reads a detached copy of h_c: its input gradient is dL_c/dh_c, which trains the
  // main net only through a Backward of loss c (local) or a message to c-1 (interlocking).
  Ctx actx, lctx;
  Tensor logits = aux->forward(l.auxIn, actx, Mode::kTrain);
  const LossResult r = sc.loss->forward(logits, s.labels, lctx);
  if (!std::isfinite(r.loss))
    throw NumericError("non-finite auxiliary loss " + std::to_string(r.loss) + " on stage " + std::to_string(k) +
                       ", micro-batch " + std::to_string(c.in.mb) + " (lower optim.lr?)");
  Tensor dLogits = sc.loss->backward(lctx);
  if (s.lossWeight != 1.f) sc.be->scale(dLogits, s.lossWeight);  // an uneven split's share
  l.lossDy[k] = aux->backward(dLogits, actx, InputGrad::kNeeded);
  l.auxIn = Tensor();
}

// Backward / InputGrad of loss j (seed-interlocking.md 1.2).
void Interlocking::lossBackward(OpCall& c) {
  const StageContext& sc = c.ex.stage();
  const Instr& in = c.in;
  Slot& s = c.ex.slot(in);
  LossSlot& l = s.state<LossSlot>();
  const int k = sc.coord.stage, j = in.loss;
  if (s.mb != in.mb || l.ctxDone || j < k)
    throw Error(str(in) + " on stage " + std::to_string(k) + ": no forward context of this micro-batch");
  if (j == k && sc.coord.lastStage() && !l.lossDy.count(j)) {
    l.lossDy[j] = sc.loss->backward(s.lossCtx);
    if (s.lossWeight != 1.f) sc.be->scale(l.lossDy[j], s.lossWeight);
  }
  if (j > k && !l.lossDy.count(j)) {
    auto w = l.lossWork.find(j);
    if (w == l.lossWork.end())
      throw Error(str(in) + " on stage " + std::to_string(k) + ": the gradient of loss " + std::to_string(j) +
                  " was never received");
    c.ex.wait(w->second, c.st);
    l.lossWork.erase(w);
    l.lossDy[j] = l.lossBuf.at(j);
    l.lossBuf.erase(j);
  }
  auto dyIt = l.lossDy.find(j);
  if (dyIt == l.lossDy.end())
    throw Error(str(in) + " on stage " + std::to_string(k) + ": no gradient of loss " + std::to_string(j));
  const bool lastUse = --ctxUses_[in.mb] == 0;
  const bool needDx = k > 0 && dxSent_.count(&in);
  Tensor dx;
  if (in.op == Op::kInputGrad) {
    dx = inputOnlyBackward(*sc.model, dyIt->second, s.ctx, sc.range);
  } else {
    Tensor dy = dyIt->second;
    float w = 1.f;
    for (const VjpItem& it : rule_.plan(k))
      if (it.params && it.loss == j) w = it.weight;
    if (w != 1.f) {  // mean mode: the step's gradient is (dL_c + dL_{c+1}) / 2
      Tensor scaled = sc.be->empty(dy.shape());
      sc.be->copy(dy, scaled);
      sc.be->scale(scaled, w);
      dy = scaled;
    }
    Ctx copy;
    if (!lastUse) copy = s.ctx;  // later passes still need the context
    dx = sc.model->backward(dy, lastUse ? s.ctx : copy, sc.range, needDx ? InputGrad::kNeeded : InputGrad::kSkip);
  }
  if (needDx) l.lossDx[j] = dx;
  if (lastUse) {
    s.ctx.clear();
    l.ctxDone = true;
    if (l.lossDx.empty()) s.reset();
  }
}

}  // namespace

std::unique_ptr<Algorithm> makeInterlocking(const TrainConfig& cfg, InterlockingKind kind) {
  return std::make_unique<Interlocking>(cfg, kind);
}

const std::vector<BlockRange>& interlockingComponents(const Algorithm& a) {
  return dynamic_cast<const Interlocking&>(a).components();
}

}  // namespace sw
