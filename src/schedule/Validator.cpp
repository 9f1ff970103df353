// Discrete-event simulation of all ranks' programs. Each rank advances through its flattened
// instructions until it blocks: a Forward/Backward whose received input has no matching send
// yet, or a collective (ReduceGrads, ElasticSync) whose replica peers have not all arrived.
// Sends never block (the Executor waits for them lazily), receives are posted without blocking
// and pair first-to-first with sends on the same (source, destination, tag) channel, exactly
// MPI's ordering rule. If a sweep over all ranks makes no progress before every program ends,
// the schedule deadlocks.
#include "schedule/Validator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <sstream>

namespace sw {
namespace {

struct SlotSim {
  int mb = -1;
  bool input = false, inputPending = false;  // activation/data for Forward
  double inputReady = 0;
  bool labels = false;
  bool live = false;                         // forward done, context held
  double outputReady = 0;
  bool gradPending = false, gradIn = false;  // output gradient for Backward
  double gradReady = 0;
  bool reconPending = false, reconIn = false;  // PETRA: output as the next stage knows it
  bool gradOut = false;                      // backward done, input gradient to send
  double gradOutReady = 0;
  int fwdVersion = 0;                        // weight version when the forward ran
  // Interlocking: per loss j, the gradient w.r.t. this stage's output (ready time, or a posted
  // receive) and w.r.t. its input (computed, still to be sent).
  bool lossMode = false;
  std::map<int, double> lossDy, lossDx;
  std::set<int> lossPending;
};

struct RankSim {
  std::vector<std::pair<int, Instr>> code;  // (step index, instruction)
  size_t pc = 0;
  double clock = 0;
  std::vector<SlotSim> slots;
  int version = 0;
  std::set<int> stash;
  int reduces = 0;  // collectives (ReduceGrads, ElasticSync) issued
  bool predicted = false;
  bool localLoss = false;  // the program has LocalLoss: every stage loads labels
  std::set<int> trained, synced;  // DTP: feedback blocks trained / broadcast for the current mb
};

struct PendingSend {
  int mb;
  double time;
};
enum class RecvKind { kAct, kGrad, kRecon, kLoss };
struct PendingRecv {
  int rank, slot, mb;
  RecvKind kind;
  int loss = -1;
  double time = 0;  // when it was posted
};

class Sim {
 public:
  Sim(const std::vector<Program>& progs, const ScheduleSpec& spec, const SimCosts& costs)
      : spec_(spec), costs_(costs) {
    ranks_.resize(progs.size());
    for (size_t r = 0; r < progs.size(); ++r) {
      for (size_t s = 0; s < progs[r].size(); ++s)
        for (const Instr& in : progs[r][s]) ranks_[r].code.push_back({int(s), in});
      ranks_[r].slots.resize(std::max(1, numSlots(progs[r])));
      for (const auto& [step, in] : ranks_[r].code) ranks_[r].localLoss |= in.op == Op::kLocalLoss;
    }
    res_.busy.assign(progs.size(), 0);
    res_.peakSlots.assign(progs.size(), 0);
    res_.peakStash.assign(progs.size(), 0);
    res_.staleness.assign(progs.size(), 0);
    uniform_ = {.forward = costs.forward, .backward = costs.backward, .update = costs.update, .aux = costs.aux,
                .inputGrad = costs.inputGrad};
  }

  SimResult run() {
    for (;;) {
      bool progress = false, allDone = true;
      for (size_t r = 0; r < ranks_.size() && res_.ok; ++r) {
        while (res_.ok && ranks_[r].pc < ranks_[r].code.size() && advance(int(r))) progress = true;
        if (ranks_[r].pc < ranks_[r].code.size()) allDone = false;
      }
      if (!res_.ok) return res_;
      if (allDone) break;
      if (!progress) {
        std::ostringstream os;
        os << "deadlock: every unfinished rank is blocked:";
        for (size_t r = 0; r < ranks_.size(); ++r)
          if (ranks_[r].pc < ranks_[r].code.size())
            os << " [rank " << r << " step " << ranks_[r].code[ranks_[r].pc].first << ": "
               << str(ranks_[r].code[ranks_[r].pc].second) << "]";
        return fail(os.str());
      }
    }
    for (auto& [key, q] : sends_)
      if (!q.empty())
        return fail("rank " + std::to_string(std::get<0>(key)) + " sends mb " + std::to_string(q.front().mb) +
                    " to rank " + std::to_string(std::get<1>(key)) + " (tag " + std::to_string(std::get<2>(key)) +
                    ") but no receive matches it");
    for (auto& [key, q] : recvs_)
      if (!q.empty())
        return fail("rank " + std::to_string(std::get<1>(key)) + " receives mb " + std::to_string(q.front().mb) +
                    " from rank " + std::to_string(std::get<0>(key)) + " but nothing is sent");
    for (size_t r = 0; r < ranks_.size(); ++r)
      for (size_t s = 0; s < ranks_[r].slots.size(); ++s)
        if (ranks_[r].slots[s].mb >= 0)
          return fail("rank " + std::to_string(r) + " ends with slot " + std::to_string(s) +
                      " still holding mb " + std::to_string(ranks_[r].slots[s].mb));
    for (auto& [stage, arrivals] : reduceArrivals_)
      for (auto& a : arrivals)
        if (int(a.ranks.size()) != spec_.replicas)
          return fail(std::string(opName(a.op)) + " of stage " + std::to_string(stage) + " reached by " +
                      std::to_string(a.ranks.size()) + " of " + std::to_string(spec_.replicas) + " replicas");
    for (const RankSim& r : ranks_) res_.makespan = std::max(res_.makespan, r.clock);
    for (size_t r = 0; r < ranks_.size(); ++r)
      res_.idleFraction.push_back(res_.makespan > 0 ? 1.0 - res_.busy[r] / res_.makespan : 0.0);
    return res_;
  }

 private:
  using Key = std::tuple<int, int, int>;  // (source rank, destination rank, tag)
  const StageCosts& cost(int rank) const {
    const int s = stageOf(rank);
    return costs_.stage.empty() ? uniform_ : costs_.stage.at(size_t(s) % costs_.stage.size());
  }
  // When a message posted at `ready` arrives: one message at a time per (source, destination).
  double arrival(const Key& k, double ready, double bytes) {
    if (!costs_.comm) return ready;
    double& busy = linkFree_[{std::get<0>(k), std::get<1>(k)}];
    const double t = std::max(ready, busy) + costs_.comm->message(std::get<0>(k), std::get<1>(k), bytes);
    busy = t;
    return t;
  }
  int stageOf(int rank) const { return rank % spec_.stages; }
  int rankOfStage(int rank, int stage) const { return rank - stageOf(rank) + stage; }

  SimResult fail(const std::string& msg) {
    if (res_.ok) {
      res_.ok = false;
      res_.error = msg;
    }
    return res_;
  }
  bool bad(int rank, const Instr& in, const std::string& why) {
    fail("rank " + std::to_string(rank) + " (stage " + std::to_string(stageOf(rank)) + ") at " +
         str(in) + ": " + why);
    return false;
  }

  void match(const Key& k) {
    auto& sq = sends_[k];
    auto& rq = recvs_[k];
    while (!sq.empty() && !rq.empty()) {
      PendingSend s = sq.front();
      PendingRecv r = rq.front();
      sq.pop_front();
      rq.pop_front();
      if (s.mb != r.mb) {
        fail("rank " + std::to_string(std::get<0>(k)) + " sends mb " + std::to_string(s.mb) + " to rank " +
             std::to_string(std::get<1>(k)) + " (tag " + std::to_string(std::get<2>(k)) +
             ") where that rank's matching receive expects mb " + std::to_string(r.mb));
        return;
      }
      SlotSim& sl = ranks_[r.rank].slots[r.slot];
      lastMatch_[k] = std::max(s.time, r.time);
      if (r.kind == RecvKind::kLoss) {
        sl.lossPending.erase(r.loss);
        sl.lossDy[r.loss] = s.time;
      } else if (r.kind == RecvKind::kGrad) {
        sl.gradPending = false;
        sl.gradIn = true;
        sl.gradReady = s.time;
      } else if (r.kind == RecvKind::kRecon) {
        sl.reconPending = false;
        sl.reconIn = true;
        sl.gradReady = std::max(sl.gradReady, s.time);
      } else {
        sl.inputPending = false;
        sl.input = true;
        sl.inputReady = s.time;
      }
      ++res_.messages;
    }
  }

  void record(int rank, const Instr& in, double start, double end) {
    res_.events.push_back({rank, in, start, end});
    res_.busy[rank] += end - start;
  }

  bool checkVersion(int rank, const Instr& in) {
    RankSim& R = ranks_[rank];
    if (in.version < 0 || in.version == R.version || R.stash.count(in.version)) return true;
    return bad(rank, in, "weight version " + std::to_string(in.version) + " is neither current (" +
                             std::to_string(R.version) + ") nor stashed");
  }

  // One instruction of one rank, as the op methods below see it.
  struct At {
    int rank;
    RankSim& R;
    const Instr in;
    int stage;
    bool first, last, eval;
  };
  SlotSim* slotOf(At& a) {
    if (a.in.slot < 0 || a.in.slot >= int(a.R.slots.size())) {
      bad(a.rank, a.in, "no slot");
      return nullptr;
    }
    return &a.R.slots[a.in.slot];
  }
  int peerOf(At& a) {
    if (a.in.peer < 0 || a.in.peer >= spec_.stages || a.in.peer == a.stage) {
      bad(a.rank, a.in, "invalid peer stage");
      return -1;
    }
    return rankOfStage(a.rank, a.in.peer);
  }

  // Executes the rank's next instruction if it can; false when blocked (or on a violation).
  bool advance(int rank) {
    RankSim& R = ranks_[rank];
    const int stage = stageOf(rank);
    At a{rank, R, R.code[R.pc].second, stage, stage == 0, stage == spec_.stages - 1, spec_.phase == Phase::kEval};
    const Instr& in = a.in;
    bool done = false;
    switch (in.op) {
      case Op::kLoad:
        done = opLoad(a);
        break;
      case Op::kRecvAct:
        done = opRecvAct(a);
        break;
      case Op::kForward:
        done = opForward(a);
        break;
      case Op::kSendAct:
        done = opSendAct(a);
        break;
      case Op::kRecvGrad:
        done = opRecvGrad(a);
        break;
      case Op::kInputGrad:
      case Op::kBackward:
        done = opBackward(a);
        break;
      case Op::kSendGrad:
        done = opSendGrad(a);
        break;
      case Op::kLocalLoss:
        done = opLocalLoss(a);
        break;
      case Op::kTrainFeedback:
        done = opTrainFeedback(a);
        break;
      case Op::kComputeTargets:
        done = opComputeTargets(a);
        break;
      case Op::kReduceGrads:
      case Op::kSyncFeedback:
      case Op::kElasticSync:
        done = opCollective(a);
        break;
      case Op::kOptimizerStep:
        done = opOptimizerStep(a);
        break;
      case Op::kPredictWeights:
        done = opPredictWeights(a);
        break;
      case Op::kStashWeights:
        done = opStashWeights(a);
        break;
      default:
        return bad(rank, in, "instruction not simulated by this validator");
    }
    if (done) {
      ++R.pc;
      int held = 0;
      for (const SlotSim& sl : R.slots) held += sl.mb >= 0;
      res_.peakSlots[rank] = std::max(res_.peakSlots[rank], held);
    }
    return done;
  }

  bool opLoad(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    if (!s) return false;
    if (!first && !last && !R.localLoss)
      return bad(rank, in, "only the first and last stages load data (others: labels for a LocalLoss)");
    if (s->mb >= 0 && s->mb != in.mb) return bad(rank, in, "slot still holds mb " + std::to_string(s->mb));
    s->mb = in.mb;
    if (first) {
      s->input = true;
      s->inputReady = R.clock;
    }
    if (last || R.localLoss) s->labels = true;
    return true;
  }

  bool opRecvAct(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    int src = peerOf(at);
    if (!s || src < 0) return false;
    if (first) return bad(rank, in, "stage 0 has no upstream activation");
    if (s->mb >= 0) return bad(rank, in, "slot still holds mb " + std::to_string(s->mb));
    s->mb = in.mb;
    s->inputPending = true;
    Key k{src, rank, in.tag};
    recvs_[k].push_back({rank, in.slot, in.mb, RecvKind::kAct, -1, R.clock});
    match(k);
    return true;
  }

  bool opForward(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    if (!s) return false;
    if (s->mb != in.mb) return bad(rank, in, "slot holds mb " + std::to_string(s->mb));
    if (s->live) return bad(rank, in, "slot already holds a forward context");
    if (s->inputPending) return false;  // blocked on the receive
    if (!s->input) return bad(rank, in, "input neither loaded nor received");
    if (last && !s->labels) return bad(rank, in, "last stage computes the loss without labels");
    if (!checkVersion(rank, in)) return false;
    if (in.version == kVersionPredicted && !R.predicted) return bad(rank, in, "predicted weights never built");
    const double start = std::max(R.clock, s->inputReady);
    R.clock = start + cost(rank).forward;
    record(rank, in, start, R.clock);
    s->outputReady = R.clock;
    s->fwdVersion = R.version;
    if (last) s->lossDy[stage] = R.clock;  // the true loss and its gradient
    if (eval && last) *s = SlotSim{};
    else s->live = true;
    return true;
  }

  bool opSendAct(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    int dst = peerOf(at);
    if (!s || dst < 0) return false;
    if (!s->live || s->mb != in.mb) return bad(rank, in, "no forward output of this mb in the slot");
    if (in.peer != stage + 1) return bad(rank, in, "activations go to the next stage");
    Key k{rank, dst, in.tag};
    if (!boundedSendMayGo(R, k)) return false;
    sends_[k].push_back(
        {in.mb, arrival(k, spec_.boundedSends ? std::max(R.clock, s->outputReady) : s->outputReady, cost(rank).actBytes)});
    match(k);
    if (eval) *s = SlotSim{};
    return true;
  }

  bool opRecvGrad(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    int src = peerOf(at);
    if (!s || src < 0) return false;
    if (!s->live || s->mb != in.mb) return bad(rank, in, "gradient for a mb whose forward context is not here");
    if (in.peer != stage + 1) return bad(rank, in, "gradients come from the next stage");
    if (in.loss >= 0) {
      if (in.loss <= stage || in.tag != kTagLossGrad + (in.loss - stage - 1))
        return bad(rank, in, "the gradient of loss " + std::to_string(in.loss) + " comes on tag " +
                                 std::to_string(kTagLossGrad + (in.loss - stage - 1)));
      if (s->lossDy.count(in.loss) || s->lossPending.count(in.loss)) return bad(rank, in, "received twice");
      s->lossMode = true;
      s->lossPending.insert(in.loss);
      Key k{src, rank, in.tag};
      recvs_[k].push_back({rank, in.slot, in.mb, RecvKind::kLoss, in.loss, R.clock});
      match(k);
      return true;
    }
    const bool recon = in.tag == kTagRecon;
    (recon ? s->reconPending : s->gradPending) = true;
    Key k{src, rank, in.tag};
    recvs_[k].push_back({rank, in.slot, in.mb, recon ? RecvKind::kRecon : RecvKind::kGrad, -1, R.clock});
    match(k);
    return true;
  }

  bool opBackward(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    if (!s) return false;
    if (eval) return bad(rank, in, "backward in an evaluation program");
    if (in.loss >= 0 || in.op == Op::kInputGrad) return lossBackward(rank, in, *s);
    if (!s->live || s->mb != in.mb) return bad(rank, in, "no forward context of this mb in the slot");
    if (s->gradPending || s->reconPending) return false;  // blocked on the receive
    if (!last && !s->gradIn) return bad(rank, in, "output gradient never received");
    if (!checkVersion(rank, in)) return false;
    if (in.version == kVersionPredicted && !R.predicted) return bad(rank, in, "predicted weights never built");
    const double start = std::max(R.clock, last ? 0.0 : s->gradReady);
    R.clock = start + cost(rank).backward;
    record(rank, in, start, R.clock);
    res_.staleness[rank] = std::max(res_.staleness[rank], R.version - s->fwdVersion);
    if (first) {
      *s = SlotSim{};
    } else {
      s->live = false;
      s->gradOut = true;
      s->gradOutReady = R.clock;
    }
    return true;
  }

  bool opSendGrad(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    int dst = peerOf(at);
    if (!s || dst < 0) return false;
    if (in.loss >= 0) {
      if (s->mb != in.mb || !s->lossDx.count(in.loss))
        return bad(rank, in, "no input gradient of loss " + std::to_string(in.loss) + " for this mb");
      if (in.peer != stage - 1 || in.tag != kTagLossGrad + (in.loss - stage))
        return bad(rank, in, "the gradient of loss " + std::to_string(in.loss) + " goes to stage " +
                                 std::to_string(stage - 1) + " on tag " + std::to_string(kTagLossGrad + (in.loss - stage)));
      Key k{rank, dst, in.tag};
      if (!boundedSendMayGo(R, k)) return false;
      sends_[k].push_back({in.mb, arrival(k, std::max(R.clock, s->lossDx.at(in.loss)), cost(rank).gradBytes)});
      s->lossDx.erase(in.loss);
      match(k);
      releaseIfDone(*s);
      return true;
    }
    if (!s->gradOut || s->mb != in.mb) return bad(rank, in, "no input gradient of this mb in the slot");
    if (in.peer != stage - 1) return bad(rank, in, "gradients go to the previous stage");
    Key k{rank, dst, in.tag};
    if (!boundedSendMayGo(R, k)) return false;
    sends_[k].push_back(
        {in.mb, arrival(k, spec_.boundedSends ? std::max(R.clock, s->gradOutReady) : s->gradOutReady, cost(rank).gradBytes)});
    match(k);
    if (in.tag != kTagRecon) *s = SlotSim{};  // the input copy goes ahead of the gradient
    return true;
  }

  bool opLocalLoss(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    if (!s) return false;
    if (eval) return bad(rank, in, "local loss in an evaluation program");
    if (!s->live || s->mb != in.mb) return bad(rank, in, "no forward output of this mb in the slot");
    if (last) return bad(rank, in, "the last stage trains on the true loss, it has no auxiliary head");
    if (!s->labels) return bad(rank, in, "local loss without labels (Load first)");
    if (s->lossDy.count(stage)) return bad(rank, in, "local loss computed twice");
    const double start = R.clock;
    R.clock += cost(rank).aux;
    if (cost(rank).aux > 0) record(rank, in, start, R.clock);
    s->lossMode = true;
    s->lossDy[stage] = R.clock;
    return true;
  }

  bool opTrainFeedback(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    if (!s) return false;
    if (!s->live || s->mb != in.mb) return bad(rank, in, "feedback training needs this mb's forward pass");
    if (in.block < 1) return bad(rank, in, "no feedback block (G_1 .. G_L)");
    if (R.synced.count(in.block)) return bad(rank, in, "trains a block after its broadcast began");
    if (!R.trained.insert(in.block).second) return bad(rank, in, "trains the block twice for one mb");
    const double start = R.clock;
    R.clock += size_t(in.block) < costs_.feedbackBlock.size() ? costs_.feedbackBlock[size_t(in.block)] : costs_.feedback;
    record(rank, in, start, R.clock);
    return true;
  }

  bool opComputeTargets(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    SlotSim* s = slotOf(at);
    if (!s) return false;
    if (!s->live || s->mb != in.mb) return bad(rank, in, "targets need this mb's forward pass");
    if (spec_.replicas > 1)
      for (int b : R.trained)
        if (!R.synced.count(b)) return bad(rank, in, "G" + std::to_string(b) + " was trained here but never broadcast");
    R.trained.clear();
    R.synced.clear();
    return true;
  }

  // ReduceGrads, SyncFeedback and ElasticSync: collectives over the stage's replicas.
  bool opCollective(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    // Both are collectives on the stage's replica communicator: every replica must issue
    // the same sequence of them (MPI matches collectives by order, not by kind).
    if (in.op == Op::kElasticSync)
      for (const SlotSim& s : R.slots)
        if (s.live) return bad(rank, in, "weights change while mb " + std::to_string(s.mb) + " is in flight");
    auto& arrivals = reduceArrivals_[stage];
    if (int(arrivals.size()) <= R.reduces) arrivals.resize(R.reduces + 1);
    auto& a = arrivals[R.reduces];
    if (!a.ranks.empty() && a.op != in.op)
      return bad(rank, in, "collective #" + std::to_string(R.reduces) + " of stage " + std::to_string(stage) +
                               " is " + opName(a.op) + " on rank " + std::to_string(a.ranks.begin()->first));
    if (!a.ranks.empty() && (a.block != in.block || a.root != in.peer))
      return bad(rank, in, "collective #" + std::to_string(R.reduces) + " of stage " + std::to_string(stage) +
                               " broadcasts G" + std::to_string(a.block) + " from replica " + std::to_string(a.root) +
                               " on rank " + std::to_string(a.ranks.begin()->first));
    a.op = in.op;
    a.block = in.block;
    a.root = in.peer;
    if (!a.ranks.count(rank)) a.ranks[rank] = R.clock;
    if (int(a.ranks.size()) < spec_.replicas) return false;  // waiting for the other replicas
    if (in.op == Op::kSyncFeedback) {
      // The root trained the block for this mb; nobody else did.
      if (in.peer < 0 || in.peer >= spec_.replicas) return bad(rank, in, "broadcast from no replica");
      const int root = in.peer * spec_.stages + stage;
      if (!a.rootChecked && !ranks_[root].trained.count(in.block))
        return bad(rank, in, "the root (rank " + std::to_string(root) + ") never trained G" + std::to_string(in.block));
      a.rootChecked = true;  // checked once, when the last member arrives
      if (rank != root && R.trained.count(in.block))
        return bad(rank, in, "trains G" + std::to_string(in.block) + ", which replica " + std::to_string(in.peer) + " owns");
      R.synced.insert(in.block);
    }
    double t = 0;
    for (auto& [r, tr] : a.ranks) t = std::max(t, tr);
    R.clock = std::max(R.clock, t + collectiveTime(rank, in));
    ++R.reduces;
    return true;
  }

  bool opOptimizerStep(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    const double start = R.clock;
    R.clock += cost(rank).update;
    if (cost(rank).update > 0) record(rank, in, start, R.clock);
    ++R.version;
    // A version nobody stashed is dead once the weights move on.
    for (auto it = R.stash.begin(); it != R.stash.end();) {
      bool used = false;
      for (size_t j = R.pc + 1; j < R.code.size() && !used; ++j)
        used = R.code[j].second.version == *it;
      it = used ? std::next(it) : R.stash.erase(it);
    }
    return true;
  }

  bool opPredictWeights(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    if (in.version <= 0) return bad(rank, in, "prediction distance must be positive");
    R.predicted = true;
    return true;
  }

  bool opStashWeights(At& at) {
    [[maybe_unused]] auto& [rank, R, in, stage, first, last, eval] = at;
    if (in.version != R.version)
      return bad(rank, in, "stashes version " + std::to_string(in.version) + " while the weights are at " +
                               std::to_string(R.version));
    R.stash.insert(in.version);
    res_.peakStash[rank] = std::max(res_.peakStash[rank], int(R.stash.size()));
    return true;
  }

  // The collective's own duration once every member has arrived (0 without a CommModel).
  double collectiveTime(int rank, const Instr& in) const {
    if (!costs_.comm || spec_.replicas < 2) return 0;
    std::vector<int> members;
    for (int r = 0; r < spec_.replicas; ++r) members.push_back(r * spec_.stages + stageOf(rank));
    if (in.op == Op::kSyncFeedback) {
      const double bytes = size_t(in.block) < costs_.feedbackBytes.size() ? costs_.feedbackBytes[size_t(in.block)] : 0;
      return costs_.comm->broadcast(members, in.peer * spec_.stages + stageOf(rank), bytes);
    }
    return costs_.comm->allReduce(members, cost(rank).paramBytes);
  }


  // Bounded sends: a send waits until the previous one on its channel has met its receive; the
  // rank's clock then moves to that meeting time.
  bool boundedSendMayGo(RankSim& R, const Key& k) {
    if (!spec_.boundedSends) return true;
    if (!sends_[k].empty()) return false;
    auto it = lastMatch_.find(k);
    if (it != lastMatch_.end()) R.clock = std::max(R.clock, it->second);
    return true;
  }

  // An interlocking slot is free once its context is released and every input gradient is sent.
  void releaseIfDone(SlotSim& s) {
    if (s.lossMode && !s.live && s.lossDx.empty() && s.lossPending.empty()) s = SlotSim{};
  }

  // Backward / InputGrad of loss j (interlocking): the gradient w.r.t. the output must exist
  // (own loss, or received); the context stays until the last backward of the micro-batch.
  bool lossBackward(int rank, const Instr& in, SlotSim& s) {
    RankSim& R = ranks_[rank];
    const int stage = stageOf(rank);
    const int j = in.loss;
    if (j < stage) return bad(rank, in, "a stage backpropagates only its own and later components' losses");
    if (!s.live || s.mb != in.mb) return bad(rank, in, "no forward context of this mb in the slot");
    if (s.lossPending.count(j)) return false;  // blocked on the receive
    if (!s.lossDy.count(j))
      return bad(rank, in, "the gradient of loss " + std::to_string(j) + " was neither computed here nor received");
    const double start = std::max(R.clock, s.lossDy.at(j));
    R.clock = start + (in.op == Op::kInputGrad ? cost(rank).inputGrad : cost(rank).backward);
    record(rank, in, start, R.clock);
    if (in.op == Op::kBackward) res_.staleness[rank] = std::max(res_.staleness[rank], R.version - s.fwdVersion);
    s.lossMode = true;
    bool later = false, sentLater = false;
    for (size_t q = R.pc + 1; q < R.code.size(); ++q) {
      const Instr& n = R.code[q].second;
      if (n.mb != in.mb) continue;
      later |= n.op == Op::kBackward || n.op == Op::kInputGrad;
      sentLater |= n.op == Op::kSendGrad && n.loss == j;
    }
    if (in.op == Op::kInputGrad && !sentLater) return bad(rank, in, "input-only backward whose result is never sent");
    if (sentLater) s.lossDx[j] = R.clock;
    if (!later) s.live = false;
    releaseIfDone(s);
    return true;
  }

  ScheduleSpec spec_;
  SimCosts costs_;
  StageCosts uniform_;
  std::map<std::pair<int, int>, double> linkFree_;
  std::vector<RankSim> ranks_;
  std::map<Key, double> lastMatch_;
  std::map<Key, std::deque<PendingSend>> sends_;
  std::map<Key, std::deque<PendingRecv>> recvs_;
  struct Collective {
    Op op = Op::kReduceGrads;
    int block = -1, root = -1;  // SyncFeedback
    bool rootChecked = false;
    std::map<int, double> ranks;  // arrival time per rank
  };
  std::map<int, std::vector<Collective>> reduceArrivals_;  // per stage, in issue order
  SimResult res_;
};

}  // namespace

SimResult simulatePrograms(const std::vector<Program>& programs, const ScheduleSpec& spec,
                           const SimCosts& costs) {
  return Sim(programs, spec, costs).run();
}

SimResult simulate(const Schedule& sched, const ScheduleSpec& spec, const SimCosts& costs) {
  std::vector<Program> progs;
  for (int r = 0; r < spec.stages * spec.replicas; ++r)
    progs.push_back(spec.phase == Phase::kEval ? buildEvalProgram(r % spec.stages, spec)
                                               : sched.build(r % spec.stages, spec));
  return simulatePrograms(progs, spec, costs);
}

}  // namespace sw
