// The planner's search and its cost model (plan/Planner.h). docs/planning.md says where the
// model is known to be wrong.
#include "plan/Planner.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "algo/Registry.h"
#include "algo/petra/PetraAlgorithm.h"
#include "backend/BackendFactory.h"
#include "comm/Topology.h"
#include "core/Error.h"
#include "nn/Partition.h"
#include "nn/Zoo.h"

namespace sw {
namespace {

struct PlanCtx {
  const Profile& p;
  const Cluster& c;
  const PlanOptions& o;
  ClusterComm comm;
  int world;
  std::unique_ptr<Backend> be;
  std::unique_ptr<Model> model;
};

TrainConfig configFor(const PlanCtx& pc, const std::vector<std::string>& extra) {
  std::vector<std::string> keys = pc.o.overrides;
  keys.insert(keys.end(), extra.begin(), extra.end());
  return parseConfigText(pc.p.config, pc.p.origin + " (the config it was measured with)", keys);
}

// The model the profile must describe: same blocks, same parameter sizes.
void checkProfileModel(const Profile& p, Model& m, const std::string& modelName) {
  std::ostringstream why;
  if (p.model != modelName) why << "model " << p.model << ", the plan's config has model " << modelName;
  else if (p.blocks.size() != m.numBlocks())
    why << p.blocks.size() << " blocks, the config's model has " << m.numBlocks();
  else
    for (size_t i = 0; i < m.numBlocks() && why.str().empty(); ++i) {
      double bytes = 0;
      for (Param* q : m.params({i, i + 1}, Aux::kExclude)) bytes += double(q->value.bytes());
      if (p.blocks[i].name != m.blockName(i) || p.blocks[i].paramBytes != bytes)
        why << "block " << i << " = " << p.blocks[i].name << " with " << p.blocks[i].paramBytes
            << " parameter bytes, the config's is " << m.blockName(i) << " with " << bytes;
    }
  if (!why.str().empty())
    throw InputError(p.origin + ": this profile was measured on " + why.str() +
                     " (profile the model you plan for: stagewise profile --config ...)");
}

// What PETRA keeps of a forward for its backward (petra.store_context / store_input / neither).
enum class Keep { kContext, kInput, kReconstruct };
Keep keepOf(const TrainConfig& cfg) {
  return cfg.petra.storeContext ? Keep::kContext : cfg.petra.storeInput ? Keep::kInput : Keep::kReconstruct;
}

// How a PETRA stage rebuilds a forward before its backward, as algo/petra does it: every stage but
// the last keeps only block inputs (kInput: the stage's; kReconstruct: those of non-reversible
// blocks, and of the top block unless the next stage sends its output back to invert from) and
// recomputes or inverts the rest; the last stage keeps its contexts, as backprop does.
struct Rebuild {
  bool on = false;
  Keep keep = Keep::kContext;
  bool topInverted = false;  // the next stage sends the output back (DelayedParams::reconFrom)
  bool kept(const Profile& p, const BlockRange& r, size_t i) const {
    if (keep == Keep::kInput) return i == r.begin;
    return p.blocks[i].inverse.empty() || (i + 1 == r.end && !topInverted);
  }
};

Rebuild rebuildOf(const TrainConfig& cfg, const ScheduleSpec& spec, int stage) {
  Rebuild b;
  b.keep = keepOf(cfg);
  b.on = cfg.train.algo == "petra" && b.keep != Keep::kContext && stage + 1 < spec.stages;
  const std::vector<bool>& recon = spec.params.get<DelayedParams>().reconFrom;
  b.topInverted = size_t(stage) < recon.size() && recon[size_t(stage)];
  return b;
}

StageCosts stageCosts(const PlanCtx& pc, const BlockRange& r, int stage, int stages, double rows, const Rebuild& rb) {
  const Profile& p = pc.p;
  const double k = pc.c.computeScale;
  StageCosts s{.forward = 0, .backward = 0, .update = 0, .aux = 0, .inputGrad = 0};
  for (size_t i = r.begin; i < r.end; ++i) {
    const BlockProfile& b = p.blocks[i];
    s.forward += p.at(b.forward, rows);
    s.backward += p.at(b.backward, rows);
    s.inputGrad += p.at(b.inputGrad, rows);
    s.update += b.update;
    s.paramBytes += b.paramBytes;
    if (rb.on) s.backward += rb.keep == Keep::kReconstruct && !rb.kept(p, r, i) ? p.at(b.inverse, rows) : p.at(b.forward, rows);
  }
  if (stage == 0) s.forward += p.at(p.load, rows);
  s.forward += p.overheadPerMicrobatch;
  if (stage == stages - 1) s.forward += p.at(p.loss, rows);
  else s.aux = p.at(p.blocks[r.end - 1].aux, rows);
  s.forward *= k, s.backward *= k, s.inputGrad *= k, s.update *= k, s.aux *= k;
  s.actBytes = p.blocks[r.end - 1].outBytesPerRow * rows;
  s.gradBytes = p.blocks[r.begin].inBytesPerRow * rows;
  return s;
}

// Bytes one in-flight micro-batch holds on a stage (its saved contexts and inputs).
double heldPerMicrobatch(const Profile& p, const BlockRange& r, double rows, const Rebuild& rb) {
  double h = 0;
  if (rb.on) {  // the kept block inputs, and the stage's input as rebuilt for the previous stage
    for (size_t i = r.begin; i < r.end; ++i)
      if (rb.kept(p, r, i) || i == r.begin) h += p.blocks[i].inBytesPerRow * rows;
    return h;
  }
  for (size_t i = r.begin; i < r.end; ++i) {
    const BlockProfile& b = p.blocks[i];
    h += p.at(b.heldBytes, rows);
    const bool inputHeld = i == r.begin || b.savesInput || p.blocks[i - 1].savesOutput;
    if (inputHeld) h += b.inBytesPerRow * rows;
  }
  if (p.blocks[r.end - 1].savesOutput) h += p.blocks[r.end - 1].outBytesPerRow * rows;
  return h;
}

int countOps(const Program& prog, Op op) {
  int n = 0;
  for (const Step& s : prog)
    for (const Instr& in : s) n += in.op == op;
  return n;
}

struct Setup {
  TrainConfig cfg;
  std::unique_ptr<Algorithm> a;
  ScheduleSpec spec;
  int64_t rows = 0;             // per micro-batch
  int64_t batchesPerEpoch = 0;
  bool fixedPartition = false;  // the algorithm chooses it (interlocking components)
  int stagesKey = 0;            // the pipe.stages it was set up with (0: the algorithm's default)
};

Setup setUp(PlanCtx& pc, const std::string& algo, int stages, int microbatches) {
  Setup s;
  std::vector<std::string> keys{"train.algo=" + algo};
  if (stages > 0) keys.push_back("pipe.stages=" + std::to_string(stages));
  if (microbatches > 1) keys.push_back("pipe.microbatches=" + std::to_string(microbatches));
  s.cfg = configFor(pc, keys);
  s.stagesKey = stages;
  s.a = makeAlgorithm(s.cfg);
  s.spec = s.a->plan(pc.world);
  const Topology topo(pc.world, s.spec.stages);
  const LoaderPlan lp = s.a->loader(topo.coord(0));
  const int M = s.cfg.pipe.microbatches;
  if (lp.batch % M != 0)
    throw ConfigError("pipe.microbatches = " + std::to_string(M) + " does not divide the " + std::to_string(lp.batch) +
                      " samples a replica reads per batch");
  s.rows = lp.batch / M;
  s.batchesPerEpoch = pc.p.trainRows / std::max(1, lp.shard.count) / std::max<int64_t>(1, lp.batch);
  if (s.batchesPerEpoch < 1) throw ConfigError("the data set has fewer samples than one batch");
  if (size_t(s.spec.stages) > pc.model->numBlocks())
    throw ConfigError(std::to_string(s.spec.stages) + " stages but the model has " +
                      std::to_string(pc.model->numBlocks()) + " blocks");
  s.a->checkModel(*pc.model, s.spec);
  s.fixedPartition = !s.a->partition().empty() && s.a->partition() != s.cfg.pipe.partition;
  return s;
}

// One round of `batches` mini-batches; `updates` = its optimizer steps, `predicts` = whether it
// predicts weights (SpecTrain: one more copy of the stage's weights).
SimResult simulateRound(PlanCtx& pc, Setup& s, const std::vector<BlockRange>& parts, int batches, int& updates,
                        bool* predicts = nullptr) {
  ScheduleSpec spec = s.spec;
  spec.microbatches = batches * s.cfg.pipe.microbatches;
  s.a->roundShape(spec, batches);
  s.a->completeSpec(spec, *pc.model, parts);
  const std::vector<Program> progs = rankPrograms(*s.a, spec);
  SimCosts costs;
  for (int st = 0; st < spec.stages; ++st)
    costs.stage.push_back(stageCosts(pc, parts[size_t(st)], st, spec.stages, double(s.rows), rebuildOf(s.cfg, spec, st)));
  for (const BlockProfile& b : pc.p.blocks) {
    costs.feedbackBlock.push_back(pc.p.at(b.feedback, double(s.rows)) * pc.c.computeScale);
    costs.feedbackBytes.push_back(b.feedbackBytes);
  }
  costs.comm = &pc.comm;
  updates = countOps(progs[0], Op::kOptimizerStep);
  if (predicts) *predicts = countOps(progs[0], Op::kPredictWeights) > 0;
  return simulatePrograms(progs, spec, costs);
}

Candidate evaluate(PlanCtx& pc, Setup& s, const std::vector<BlockRange>& parts) {
  Candidate c;
  c.algo = s.cfg.train.algo;
  c.stages = s.spec.stages;
  c.replicas = s.spec.replicas;
  c.microbatches = s.cfg.pipe.microbatches;
  c.parts = parts;
  c.roundBatches = s.a->roundBatches(s.batchesPerEpoch);
  const int simB = std::min(c.roundBatches, std::max(2, pc.o.simBatches));
  int updates = 0;
  bool predicts = false;
  c.sim = simulateRound(pc, s, parts, simB, updates, &predicts);
  if (!c.sim.ok) throw Error(c.algo + ": the simulated programs are invalid: " + c.sim.error);
  double T = c.sim.makespan;
  c.updatesPerRound = updates;
  if (simB < c.roundBatches) {  // long asynchronous rounds: the steady state, extrapolated
    int u1 = 0;
    const SimResult half = simulateRound(pc, s, parts, simB / 2, u1);
    const double slope = (T - half.makespan) / double(simB - simB / 2);
    const double perUpdate = double(updates - u1) / double(simB - simB / 2);
    T += slope * double(c.roundBatches - simB);
    c.updatesPerRound = int(std::lround(updates + perUpdate * double(c.roundBatches - simB)));
  }
  // The measured fixed cost of each mini-batch, and the round's end: the loss/accuracy
  // reduction over all ranks (latency bound).
  T += pc.p.overheadPerBatch * pc.c.computeScale * double(c.roundBatches);
  T += pc.world > 1 ? 2.0 * std::ceil(std::log2(double(pc.world))) * pc.c.intra.latency : 0;
  c.roundSeconds = T;
  c.stepSeconds = T / std::max(1, c.updatesPerRound);
  c.samplesPerSecond = double(c.roundBatches) * double(s.cfg.train.batchSize) / T;
  c.idle = c.sim.idleFraction;
  c.staleness = c.sim.staleness;
  c.spec = s.spec;
  ScheduleSpec full = s.spec;  // the schedule fields that need the model, as the round had them
  s.a->completeSpec(full, *pc.model, parts);
  double feedbackParams = 0;
  for (const BlockProfile& b : pc.p.blocks) feedbackParams += b.feedbackBytes;
  for (int r = 0; r < pc.world; ++r) {
    const BlockRange& br = parts[size_t(r % c.stages)];
    RankMemory m;
    for (size_t i = br.begin; i < br.end; ++i) {
      m.weights += pc.p.blocks[i].paramBytes;
      m.optimizer += pc.p.blocks[i].optStateBytes;
    }
    m.grads = m.weights;
    m.activations = double(c.sim.peakSlots[size_t(r)]) *
                    heldPerMicrobatch(pc.p, br, double(s.rows), rebuildOf(s.cfg, full, r % c.stages));
    m.stash = double(c.sim.peakStash[size_t(r)] + (predicts ? 1 : 0)) * m.weights;
    if (c.algo == "interlocking" || c.algo == "local") m.extra = 3 * pc.p.blocks[br.end - 1].auxParamBytes;
    if (c.algo == "parle") m.extra = 2 * m.weights;  // the replica reference and its velocity
    if (c.algo == "dtp" || c.algo == "dtp_parallel") m.extra = 3 * feedbackParams;
    c.memory.push_back(m);
  }
  c.overrides = {"train.algo=" + c.algo};
  if (s.stagesKey > 0) c.overrides.push_back("pipe.stages=" + std::to_string(s.stagesKey));
  if (c.microbatches > 1) c.overrides.push_back("pipe.microbatches=" + std::to_string(c.microbatches));
  if (c.stages > 1 && !s.fixedPartition) {
    std::string l;
    for (int st = 1; st < c.stages; ++st) l += (st > 1 ? "," : "") + std::to_string(parts[size_t(st)].begin);
    c.overrides.push_back("pipe.partition=" + l);
  }
  return c;
}

std::vector<BlockRange> initialPartition(const PlanCtx& pc, const Setup& s) {
  const size_t nb = pc.model->numBlocks();
  if (s.spec.stages <= 1) return {BlockRange{0, nb}};
  if (!s.a->partition().empty()) return partitionExplicit(s.a->partition(), nb, s.spec.stages, "pipe.partition");
  std::vector<double> cost;
  for (const BlockProfile& b : pc.p.blocks)
    cost.push_back(pc.p.at(b.forward, double(s.rows)) + pc.p.at(b.backward, double(s.rows)));
  return partitionBalanced(cost, s.spec.stages);
}

bool better(const Candidate& a, const Candidate& b) { return a.samplesPerSecond > b.samplesPerSecond * (1 + 1e-9); }

// Moves single stage boundaries by one block while the predicted rate improves.
Candidate refinePartition(PlanCtx& pc, Setup& s, Candidate best) {
  if (best.stages <= 1 || s.fixedPartition || !s.a->partition().empty()) return best;
  for (int rounds = 0; rounds < 64; ++rounds) {
    bool improved = false;
    for (int st = 1; st < best.stages && !improved; ++st)
      for (int d : {-1, 1}) {
        std::vector<BlockRange> q = best.parts;
        const int64_t nb = int64_t(q[size_t(st)].begin) + d;
        if (nb <= int64_t(q[size_t(st - 1)].begin) || nb >= int64_t(q[size_t(st)].end)) continue;
        q[size_t(st - 1)].end = size_t(nb);
        q[size_t(st)].begin = size_t(nb);
        Candidate c = evaluate(pc, s, q);
        const bool fits = pc.o.memoryBytes <= 0 || c.peakMemory() <= pc.o.memoryBytes;
        if (fits && better(c, best)) {
          best = std::move(c);
          improved = true;
          break;
        }
      }
    if (!improved) break;
  }
  return best;
}

AlgoPlan planOne(PlanCtx& pc, const std::string& algo) {
  AlgoPlan ap;
  ap.algo = algo;
  std::vector<int> stageChoices{0};
  for (int s = 1; s <= pc.world; ++s)
    if (pc.world % s == 0) stageChoices.push_back(s);
  // Per shape (stages, replicas): the fastest micro-batch count, then its partition refined.
  std::map<std::pair<int, int>, std::pair<Candidate, Setup>> best;
  std::set<std::pair<int, int>> visited;
  for (int S : stageChoices) {
    for (int M = 1; M <= pc.o.maxMicrobatches; M *= 2) {
      Setup s;
      try {
        s = setUp(pc, algo, S, M);
      } catch (const ConfigError& e) {
        if (ap.why.empty()) ap.why = e.what();
        if (M == 1) break;  // the shape itself is refused
        continue;
      }
      const std::pair<int, int> shape{s.spec.stages, s.spec.replicas};
      if (M == 1 && !visited.insert(shape).second) break;  // the same shape as another pipe.stages
      if (s.rows < 1) break;
      Candidate c = evaluate(pc, s, initialPartition(pc, s));
      ++ap.evaluated;
      ap.smallestMemory = ap.evaluated == 1 ? c.peakMemory() : std::min(ap.smallestMemory, c.peakMemory());
      if (pc.o.memoryBytes > 0 && c.peakMemory() > pc.o.memoryBytes) {
        ap.overMemory = true;
        continue;
      }
      auto it = best.find(shape);
      if (it == best.end() || better(c, it->second.first)) best[shape] = {std::move(c), std::move(s)};
    }
  }
  for (auto& [shape, cs] : best) ap.shapes.push_back(refinePartition(pc, cs.second, cs.first));
  std::stable_sort(ap.shapes.begin(), ap.shapes.end(), better);
  if (!ap.shapes.empty()) {
    ap.best = ap.shapes.front();
    ap.feasible = true;
    ap.why.clear();
  } else if (ap.overMemory) {
    ap.why = "no candidate fits in the memory limit";
  }
  return ap;
}

std::string mb(double bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(bytes >= 1e9 ? 2 : 1);
  if (bytes >= 1e9) os << bytes / 1e9 << " GB";
  else os << bytes / 1e6 << " MB";
  return os.str();
}

std::string partsStr(const std::vector<BlockRange>& parts) {
  std::ostringstream os;
  for (size_t s = 0; s < parts.size(); ++s)
    os << (s ? " | " : "") << parts[s].begin << ".." << parts[s].end - 1;
  return os.str();
}

}  // namespace

double Candidate::peakMemory() const {
  double m = 0;
  for (const RankMemory& r : memory) m = std::max(m, r.total());
  return m;
}

namespace {
// The rank count checked against the cluster, and the model the plan is for (checked against
// the profile), built once on the CPU for the algorithms' model checks.
PlanCtx makeCtx(const Profile& p, const Cluster& c, const PlanOptions& o) {
  PlanCtx pc{.p = p, .c = c, .o = o, .comm = ClusterComm(c), .world = o.ranks > 0 ? o.ranks : c.devices()};
  if (pc.world > c.devices())
    throw InputError("--ranks " + std::to_string(pc.world) + ": the cluster " + c.origin + " has " +
                     std::to_string(c.devices()) + " devices");
  if (pc.world > 1 && !c.linksMissing.empty()) throw InputError(c.linksMissing);
  const TrainConfig base = configFor(pc, {});
  pc.be = makeBackend(BackendOptions{.device = "cpu", .threads = 1});
  pc.model = buildModel(*pc.be, base.model, Shape(p.sampleShape), p.classes, base.train.seed);
  checkProfileModel(p, *pc.model, base.model.name);
  return pc;
}
}  // namespace

std::vector<AlgoPlan> planAll(const Profile& p, const Cluster& c, const PlanOptions& o) {
  PlanCtx pc = makeCtx(p, c, o);
  std::vector<std::string> names = o.algos;
  if (names.empty())
    for (const AlgoInfo& a : algorithms()) names.push_back(a.name);
  std::vector<AlgoPlan> out;
  for (const std::string& n : names) {
    (void)findAlgorithm(n);  // an unknown name is bad input
    out.push_back(planOne(pc, n));
  }
  return out;
}

Candidate evaluateCandidate(const Profile& p, const Cluster& c, const PlanOptions& o, const std::string& algo,
                            int stages, int microbatches, const std::vector<BlockRange>* parts) {
  PlanCtx pc = makeCtx(p, c, o);
  Setup s = setUp(pc, algo, stages, microbatches);
  return evaluate(pc, s, parts ? *parts : initialPartition(pc, s));
}

std::string planReport(const std::vector<AlgoPlan>& plans, const Profile& p, const Cluster& c) {
  std::ostringstream os;
  os << "plan for model " << p.model << " (batch " << p.batchSize << ", profiled on " << p.device << ", "
     << p.threads << " thread(s) per rank, " << p.ranks << " rank(s)) on " << c.name << ": " << c.nodes << " node(s) x "
     << c.devicesPerNode << " device(s)\n\n";
  os << std::left << std::setw(13) << "algorithm" << std::setw(8) << "shape" << std::setw(4) << "M" << std::right
     << std::setw(12) << "step ms" << std::setw(12) << "samples/s" << std::setw(10) << "idle max" << std::setw(12)
     << "peak mem" << std::setw(7) << "stale" << "  partition (blocks per stage)\n";
  const AlgoPlan* best = nullptr;
  for (const AlgoPlan& a : plans) {
    if (!a.feasible) {
      os << std::left << std::setw(13) << a.algo << "not planned: " << a.why << "\n";
      continue;
    }
    for (size_t k = 0; k < a.shapes.size(); ++k) {
      const Candidate& b = a.shapes[k];
      double idle = 0;
      int stale = 0;
      for (double x : b.idle) idle = std::max(idle, x);
      for (int x : b.staleness) stale = std::max(stale, x);
      os << std::left << std::setw(13) << (k == 0 ? a.algo : "") << std::setw(8)
         << (std::to_string(b.stages) + "x" + std::to_string(b.replicas)) << std::setw(4) << b.microbatches
         << std::right << std::fixed << std::setprecision(2) << std::setw(12) << 1e3 * b.stepSeconds
         << std::setprecision(0) << std::setw(12) << b.samplesPerSecond << std::setprecision(1) << std::setw(9)
         << 100 * idle << "%" << std::setw(12) << mb(b.peakMemory()) << std::setw(7) << stale << "  "
         << partsStr(b.parts) << "\n";
    }
    if (!best || better(a.best, best->best)) best = &a;
  }
  if (!best) return os.str() + "\nno algorithm can be planned\n";
  const Candidate& b = best->best;
  os << "\nfastest: " << b.algo << " on " << b.stages << " stage(s) x " << b.replicas << " replica(s), "
     << b.microbatches << " micro-batch(es); round of " << b.roundBatches << " batch(es), " << b.updatesPerRound
     << " optimizer step(s), predicted " << std::setprecision(3) << b.roundSeconds << " s\n";
  for (size_t r = 0; r < b.memory.size(); ++r) {
    const RankMemory& m = b.memory[r];
    os << "  rank " << r << ": idle " << std::setprecision(1) << 100 * b.idle[r] << "%, staleness " << b.staleness[r]
       << ", memory " << mb(m.total()) << " (weights " << mb(m.weights) << ", grads " << mb(m.grads) << ", optimizer "
       << mb(m.optimizer) << ", activations " << mb(m.activations) << ", stash " << mb(m.stash) << ", other "
       << mb(m.extra) << ")\n";
  }
  os << "overrides:";
  for (const std::string& k : b.overrides) os << " " << k;
  os << "\n";
  return os.str();
}

namespace {
nlohmann::json candidateJson(const Candidate& b) {
  std::vector<double> mem, held;
  for (const RankMemory& m : b.memory) {
    mem.push_back(m.total());
    held.push_back(m.held());
  }
  std::vector<std::vector<size_t>> parts;
  for (const BlockRange& r : b.parts) parts.push_back({r.begin, r.end});
  return {{"stages", b.stages},
          {"replicas", b.replicas},
          {"microbatches", b.microbatches},
          {"partition", parts},
          {"round_batches", b.roundBatches},
          {"updates_per_round", b.updatesPerRound},
          {"round_s", b.roundSeconds},
          {"step_s", b.stepSeconds},
          {"samples_per_s", b.samplesPerSecond},
          {"idle", b.idle},
          {"memory_bytes", mem},
          {"held_bytes", held},
          {"staleness", b.staleness},
          {"overrides", b.overrides}};
}
}  // namespace

std::string planJson(const std::vector<AlgoPlan>& plans, const Profile& p, const Cluster& c) {
  nlohmann::json j;
  j["model"] = p.model;
  j["profile"] = p.origin;
  j["cluster"] = c.origin;
  nlohmann::json a = nlohmann::json::array();
  for (const AlgoPlan& ap : plans) {
    nlohmann::json x{{"algo", ap.algo}, {"feasible", ap.feasible}, {"evaluated", ap.evaluated}};
    if (!ap.feasible) {
      x["why"] = ap.why;
    } else {
      x.update(candidateJson(ap.best));
      nlohmann::json shapes = nlohmann::json::array();
      for (const Candidate& k : ap.shapes) shapes.push_back(candidateJson(k));
      x["shapes"] = shapes;
    }
    a.push_back(x);
  }
  j["algorithms"] = a;
  return j.dump(1) + "\n";
}

std::string timelineSvg(const Candidate& c) {
  const int ranks = int(c.idle.size());
  const double T = std::max(c.sim.makespan, 1e-12);
  const double W = 1000, rowH = 28, left = 150, top = 30;
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + W + 20 << "\" height=\""
     << top + rowH * ranks + 40 << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  os << "<text x=\"4\" y=\"16\">" << c.algo << ": " << c.stages << " stage(s) x " << c.replicas << " replica(s), "
     << c.microbatches << " micro-batch(es); simulated round " << std::setprecision(4) << T * 1e3 << " ms</text>\n";
  auto colour = [](Op op) {
    switch (op) {
      case Op::kForward: return "#4e79a7";
      case Op::kBackward: return "#59a14f";
      case Op::kInputGrad: return "#8cd17d";
      case Op::kLocalLoss: return "#f28e2b";
      case Op::kTrainFeedback: return "#b07aa1";
      case Op::kOptimizerStep: return "#9c755f";
      default: return "#bab0ac";
    }
  };
  for (int r = 0; r < ranks; ++r) {
    const double y = top + rowH * r;
    os << "<text x=\"4\" y=\"" << y + rowH * 0.65 << "\">rank " << r << " (stage " << r % c.stages << ") idle "
       << std::fixed << std::setprecision(1) << 100 * c.idle[size_t(r)] << "%</text>\n";
    os << "<rect x=\"" << left << "\" y=\"" << y + 2 << "\" width=\"" << W << "\" height=\"" << rowH - 4
       << "\" fill=\"#f4f4f4\"/>\n";
  }
  for (const TimelineEvent& e : c.sim.events) {
    const double x = left + W * e.start / T, w = std::max(0.5, W * (e.end - e.start) / T);
    const double y = top + rowH * e.rank + 2;
    os << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << w << "\" height=\"" << rowH - 4 << "\" fill=\""
       << colour(e.in.op) << "\" stroke=\"white\" stroke-width=\"0.5\"><title>" << shortStr(e.in) << " "
       << (e.end - e.start) * 1e3 << " ms</title></rect>\n";
    if (w > 18)
      os << "<text x=\"" << x + 2 << "\" y=\"" << y + rowH * 0.55 << "\" fill=\"white\">" << shortStr(e.in)
         << "</text>\n";
  }
  os << "<text x=\"" << left << "\" y=\"" << top + rowH * ranks + 20
     << "\">F forward, B backward, i input-only backward, L aux-head loss, G feedback training, U optimizer step; "
        "gaps: waiting (messages, collectives)</text>\n</svg>\n";
  return os.str();
}

}  // namespace sw
