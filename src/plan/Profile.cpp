// Profile measurement and its JSON form. Every figure is a median of timed repeats after a
// warm-up, on the backend the config names, with the device synchronised around each timed
// region; model state the measurement touches is discarded with the model.
#include "plan/Profile.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

#include "algo/Registry.h"
#include "algo/dtp/Dtp.h"
#include "comm/Topology.h"
#include "train/Feeds.h"
#include "core/Clock.h"
#include "core/Error.h"
#include "core/Log.h"
#include "data/Dataset.h"
#include "data/Loader.h"
#include "nn/AuxHead.h"
#include "nn/Loss.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"

namespace sw {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Median seconds of `fn` over `reps` runs after one warm-up; `prep` runs untimed before each.
double timeIt(Backend& be, int reps, const std::function<void()>& fn, const std::function<void()>& prep = {}) {
  std::vector<double> t;
  for (int r = 0; r <= reps; ++r) {
    if (prep) prep();
    be.synchronize();
    const auto t0 = Clock::now();
    fn();
    be.synchronize();
    if (r > 0) t.push_back(secondsSince(t0));
  }
  return median(t);
}

// Bytes a context keeps, each buffer once: storage already in `seen` is not counted again.
double ctxBytes(const Ctx& c, std::set<const void*>& seen) {
  double total = 0;
  for (const Tensor& t : c.saved)
    if (t.defined() && seen.insert(t.data()).second) total += double(t.bytes());
  for (const Ctx& k : c.sub) total += ctxBytes(k, seen);
  return total;
}
bool ctxHolds(const Ctx& c, const void* p) {
  for (const Tensor& t : c.saved)
    if (t.defined() && t.data() == p) return true;
  for (const Ctx& k : c.sub)
    if (ctxHolds(k, p)) return true;
  return false;
}

Shape batchShape(const Shape& sample, int64_t n) {
  std::vector<int64_t> d{n};
  for (int64_t v : sample.dims()) d.push_back(v);
  return Shape(d);
}

double paramBytes(const std::vector<Param*>& ps) {
  double b = 0;
  for (const Param* p : ps) b += double(p->value.bytes());
  return b;
}

Tensor filled(Backend& be, const Shape& s, float v) {
  Tensor t = be.empty(s);
  be.fill(t, v);
  return t;
}

// The default rows: the batch, halved down to 1/64 of it (at least 1).
std::vector<int64_t> defaultRows(int64_t batch) {
  std::vector<int64_t> r;
  for (int64_t n = batch; n >= 1 && n * 64 >= batch; n /= 2) r.push_back(n);
  std::reverse(r.begin(), r.end());
  return r;
}

void measureBlocks(Profile& p, Model& m, Backend& be, const TrainConfig& cfg, const Batch& data, int reps) {
  const size_t nb = m.numBlocks();
  SoftmaxCrossEntropy loss(be);
  Rng auxRng(cfg.train.seed);
  const std::string auxArch = cfg.interlocking.aux.substr(0, cfg.interlocking.aux.find(','));
  for (size_t i = 0; i < nb; ++i) {
    BlockProfile b;
    b.name = m.blockName(i);
    const BlockRange r{i, i + 1};
    std::vector<Param*> ps = m.params(r, Aux::kExclude);
    b.paramBytes = paramBytes(ps);
    const Shape inSample = i == 0 ? m.sampleShape() : m.blockOutputShape(i - 1, 1);
    b.inBytesPerRow = double(inSample.numel()) * 4.0;
    b.outBytesPerRow = double(m.blockOutputShape(i, 1).numel()) * 4.0;
    const bool reversible = m.block(i).reversible();
    std::unique_ptr<Sequential> head;
    if (i + 1 < nb) {
      try {
        head = buildAuxHead(be, auxArch, i == 0 ? m.blockOutputShape(0, 1) : m.blockOutputShape(i, 1), m.classes(),
                            auxRng, "interlocking.aux");
        std::vector<Param*> hp;
        head->collectParams(hp);
        b.auxParamBytes = paramBytes(hp);
      } catch (const ConfigError&) {
        head.reset();  // the head does not fit this block's output: interlocking cannot cut here
      }
    }
    for (int64_t n : p.rows) {
      Tensor x = i == 0 ? filled(be, batchShape(m.sampleShape(), n), 0.5f) : filled(be, m.blockOutputShape(i - 1, n), 0.5f);
      if (i == 0) be.copy(data.x.slice(0, n), x);
      const InputGrad ig = i == 0 ? InputGrad::kSkip : InputGrad::kNeeded;
      Ctx ctx;
      Tensor y;
      b.forward.push_back(timeIt(be, reps, [&] { ctx = Ctx{}; y = m.forward(x, ctx, Mode::kTrain, r); }));
      std::set<const void*> seen{x.data(), y.data()};
      b.heldBytes.push_back(ctxBytes(ctx, seen));
      b.savesInput = ctxHolds(ctx, x.data());
      b.savesOutput = ctxHolds(ctx, y.data());
      const Tensor dy = filled(be, y.shape(), 1e-3f);
      Ctx work;
      b.backward.push_back(timeIt(be, reps, [&] { m.backward(dy, work, r, ig); },
                                  [&] { work = Ctx{}; (void)m.forward(x, work, Mode::kTrain, r); }));
      if (i > 0) b.inputGrad.push_back(timeIt(be, reps, [&] { (void)inputOnlyBackward(m, dy, ctx, r); }));
      if (reversible) {
        Ctx inv;
        b.inverse.push_back(timeIt(be, reps, [&] { inv = Ctx{}; (void)m.block(i).inverse(y, inv); }));
      }
      if (head) {
        Tensor labels = be.empty(Shape({n}));
        be.copy(data.labels.slice(0, n), labels);
        b.aux.push_back(timeIt(be, reps, [&] {
          Ctx hc, lc;
          Tensor z = head->forward(y, hc, Mode::kTrain);
          (void)loss.forward(z, labels, lc);
          (void)head->backward(loss.backward(lc), hc, InputGrad::kNeeded);
        }));
      }
      if (i + 1 == nb) {
        Tensor labels = be.empty(Shape({n}));
        be.copy(data.labels.slice(0, n), labels);
        p.loss.push_back(timeIt(be, reps, [&] {
          Ctx lc;
          (void)loss.forward(y, labels, lc);
          (void)loss.backward(lc);
        }));
      }
    }
    Optimizer opt(be, ps, cfg.optim);  // the gradients of the backward passes above are there
    b.update = ps.empty() ? 0 : timeIt(be, reps, [&] { opt.step(1e-6f); });
    m.zeroGrad(r);
    for (const ParamState& st : opt.state())
      for (const Tensor* t : {&st.buf, &st.lastD, &st.m, &st.v, &st.vmax})
        if (t->defined()) b.optStateBytes += double(t->bytes());
    p.blocks.push_back(std::move(b));
  }
}

// DTP's L-DRL feedback training per block, when the model is one DTP can invert.
void measureFeedback(Profile& p, Model& m, Backend& be, const TrainConfig& cfg, const Batch& data, int reps) {
  std::unique_ptr<dtp::FeedbackNet> g;
  try {
    g = std::make_unique<dtp::FeedbackNet>(be, m, cfg.model.name, cfg.train.seed);
  } catch (const ConfigError&) {
    return;  // not a DTP model: the planner leaves dtp out, saying why
  }
  const dtp::Hyper hp = dtp::Hyper::fromConfig(cfg.dtp, g->numBlocks(), cfg.train.seed);
  std::vector<dtp::ForwardBlockInfo> info;
  for (int i = 0; i < g->numBlocks(); ++i) info.push_back(g->block(i).info());
  for (int i = 1; i < g->numBlocks() && size_t(i) < p.blocks.size(); ++i) {
    p.blocks[size_t(i)].feedbackBytes = double(g->block(i).weight().value.bytes());
    OptimConfig oc;
    oc.momentum = hp.momentum;
    Optimizer opt(be, {&g->block(i).weight()}, oc);
    for (int64_t n : p.rows) {
      Tensor x = be.empty(batchShape(m.sampleShape(), n)), labels = be.empty(Shape({n}));
      be.copy(data.x.slice(0, n), x);
      be.copy(data.labels.slice(0, n), labels);
      dtp::ForwardPass fp;
      dtp::forwardPass(m, info, x, labels, fp);
      p.blocks[size_t(i)].feedback.push_back(timeIt(be, std::min(reps, 2), [&] {
        (void)dtp::trainFeedback(g->block(i), m.block(size_t(i)), info[size_t(i)], fp, i, hp, opt, 0);
      }));
    }
  }
}

// Seconds of one real optimizer step of plain backprop through the executor with M
// micro-batches (median of `reps` after two warm-up steps).
double realStep(const TrainConfig& base, Backend& be, Model& m, const Dataset& train, int M, int reps) {
  TrainConfig cfg = base;
  cfg.train.algo = "bp";
  cfg.train.accumSteps = 1;
  cfg.pipe.stages = 0;
  cfg.pipe.microbatches = M;
  std::unique_ptr<Algorithm> a = makeAlgorithm(cfg);
  ScheduleSpec spec = a->plan(1);
  const RankCoord coord = Topology(1, 1).coord(0);
  const LoaderPlan lp = a->loader(coord);
  BatchLoader loader(train, lp.batch, lp.seed, lp.shard, cfg.augment, Shuffle::kYes, DropLast::kYes, Augment::kYes);
  CommPtr pipe = makeSelfCommunicator(), data = makeSelfCommunicator();
  Optimizer opt(be, m.params(), cfg.optim);
  SoftmaxCrossEntropy loss(be);
  Executor ex(StageContext{.be = &be, .model = &m, .range = {0, m.numBlocks()}, .opt = &opt, .loss = &loss,
                           .coord = coord, .pipe = pipe.get(), .data = data.get()},
              ExecutorOptions{}, a.get());
  spec.microbatches = M;
  a->roundShape(spec, 1);
  const Program prog = a->build(coord, spec);
  std::vector<double> t;
  for (int r = 0; r < reps + 2; ++r) {
    if (r % loader.batchesPerEpoch() == 0) loader.seek(0, 0);
    TrainFeed feed(loader, M, lp.batch, r % loader.batchesPerEpoch());
    RoundInputs ri;
    feed.into(ri);
    ri.lr = [](int) { return 1e-6f; };
    ri.gradScale = 1.f / float(M);
    be.synchronize();
    const auto t0 = Clock::now();
    (void)ex.run(prog, ri);
    be.synchronize();
    if (r >= 2) t.push_back(secondsSince(t0));
  }
  return median(t);
}

// What a real step costs beyond its measured parts (the executor's bookkeeping, allocation,
// gradient zeroing, ...): a + b M seconds for M micro-batches, fitted at M = 1 and M = 4.
void measureOverhead(Profile& p, const TrainConfig& cfg, Backend& be, Model& m, const Dataset& train, int reps) {
  auto parts = [&](int M) {
    const double n = double(p.batchSize / M);
    double s = 0;
    for (const BlockProfile& b : p.blocks) s += M * (p.at(b.forward, n) + p.at(b.backward, n)) + b.update;
    return s + M * (p.at(p.loss, n) + p.at(p.load, n));
  };
  const double o1 = realStep(cfg, be, m, train, 1, reps) - parts(1);
  const int M = p.batchSize % 4 == 0 && p.batchSize >= 4 ? 4 : 1;
  const double oM = M > 1 ? realStep(cfg, be, m, train, M, reps) - parts(M) : o1;
  p.overheadPerMicrobatch = M > 1 ? std::max(0.0, (oM - o1) / double(M - 1)) : 0.0;
  p.overheadPerBatch = std::max(0.0, o1 - p.overheadPerMicrobatch);
}

// Ping-pong between ranks 0 and 1 and allreduce over all ranks, by size.
void measureComm(Profile& p, Communicator& world, Backend& be, int reps) {
  CommProfile& c = p.comm;
  c.ranks = world.size();
  c.kind = world.name();
  const int me = world.rank();
  for (double bytes = 4; bytes <= double(64 << 20); bytes *= 4) {
    const int64_t n = int64_t(bytes / 4);
    Tensor t = filled(be, Shape({n}), 1.f);
    const int k = bytes <= double(1 << 20) ? 4 * reps : reps;
    // Batches of k ping-pongs back to back after a warm-up batch: one-way time = elapsed / 2k,
    // the median of three batches.
    std::vector<double> pp;
    for (int r = 0; r < 4; ++r) {
      world.barrier();
      const auto t0 = Clock::now();
      for (int q = 0; q < k; ++q) {
        if (me == 0) {
          world.send(t, 1, 7)->wait();
          world.recv(t, 1, 8)->wait();
        } else if (me == 1) {
          world.recv(t, 0, 7)->wait();
          world.send(t, 0, 8)->wait();
        }
      }
      if (r > 0) pp.push_back(secondsSince(t0) / (2.0 * k));
    }
    std::vector<double> ar;
    for (int r = 0; r <= k; ++r) {
      world.barrier();
      const auto t0 = Clock::now();
      world.allReduce(t, ReduceOp::kSum)->wait();
      be.synchronize();
      if (r > 0) ar.push_back(secondsSince(t0));
    }
    std::vector<double> v{me <= 1 ? median(pp) : 0.0, median(ar)};
    world.allReduceValues(v, ReduceOp::kMax);  // rank 1's ping-pong figure is the same exchange
    c.p2p.push_back({bytes, v[0]});
    c.allReduce.push_back({bytes, v[1]});
  }
  // latency + bytes / bandwidth through the smallest and the largest message (the planner
  // interpolates the measured table itself).
  c.latency = c.p2p.front().seconds;
  const CommPoint& big = c.p2p.back();
  c.bandwidth = big.bytes / std::max(big.seconds - c.latency, 1e-12);
}

// Every rank measured the same things: the profile is their average.
void averageOverRanks(Profile& p, Communicator& world) {
  std::vector<double> v;
  auto each = [&](const std::function<void(double&)>& f) {
    for (BlockProfile& b : p.blocks) {
      for (RowSeries* s : {&b.forward, &b.backward, &b.inputGrad, &b.aux, &b.inverse, &b.feedback})
        for (double& x : *s) f(x);
      f(b.update);
    }
    for (double& x : p.loss) f(x);
    for (double& x : p.load) f(x);
    f(p.overheadPerBatch);
    f(p.overheadPerMicrobatch);
  };
  each([&](double& x) { v.push_back(x); });
  world.allReduceValues(v, ReduceOp::kAvg);
  size_t k = 0;
  each([&](double& x) { x = v[k++]; });
}

}  // namespace

double Profile::at(const RowSeries& s, double n) const {
  if (s.empty()) return 0;
  if (s.size() == 1 || rows.size() < 2) return s[0] * n / double(rows.empty() ? 1 : rows[0]);
  size_t j = 1;
  while (j + 1 < rows.size() && double(rows[j]) < n) ++j;
  const double x0 = double(rows[j - 1]), x1 = double(rows[j]);
  const double v = s[j - 1] + (s[j] - s[j - 1]) * (n - x0) / (x1 - x0);
  return std::max(v, 0.0);
}

Profile measureProfile(const TrainConfig& cfg, Communicator& world, const ProfileOptions& o) {
  Profile p;
  std::unique_ptr<Backend> be = makeBackend(cfg.runtime);
  const DataSplits data = loadData(cfg.data);
  BatchLoader loader(data.train, cfg.train.batchSize, cfg.train.seed, Shard{0, 1}, cfg.augment, Shuffle::kYes,
                     DropLast::kNo, Augment::kYes);
  std::unique_ptr<Model> m = buildModel(*be, cfg.model, loader.sampleShape(), data.train.classes, cfg.train.seed);
  p.model = cfg.model.name;
  p.device = be->name();
  p.config = iniText(cfg);
  p.threads = cpuThreads({.threads = cfg.runtime.threads, .localRanks = cfg.runtime.localRanks});
  p.ranks = world.size();
  p.sampleShape = m->sampleShape().dims();
  p.classes = m->classes();
  p.batchSize = cfg.train.batchSize;
  p.trainRows = data.train.size();
  p.rows = o.rows.empty() ? defaultRows(cfg.train.batchSize) : o.rows;
  std::sort(p.rows.begin(), p.rows.end());
  p.rows.erase(std::unique(p.rows.begin(), p.rows.end()), p.rows.end());
  if (p.rows.empty() || p.rows.front() < 1 || p.rows.back() > data.train.size())
    throw ConfigError("--rows: micro-batch sizes must be in 1.." + std::to_string(data.train.size()));
  Batch batch;
  for (int64_t n : p.rows) {
    BatchLoader l(data.train, n, cfg.train.seed, Shard{0, 1}, cfg.augment, Shuffle::kYes, DropLast::kYes, Augment::kYes);
    p.load.push_back(timeIt(*be, o.repeats, [&] {
      if (!l.next(batch)) {
        l.seek(0, 0);
        (void)l.next(batch);
      }
    }));
  }
  measureBlocks(p, *m, *be, cfg, batch, o.repeats);
  measureFeedback(p, *m, *be, cfg, batch, o.repeats);
  measureOverhead(p, cfg, *be, *m, data.train, std::max(o.repeats, 5));
  averageOverRanks(p, world);
  if (o.comm && world.size() >= 2) measureComm(p, world, *be, o.repeats);
  return p;
}

void writeProfile(const Profile& p, const std::string& path) {
  nlohmann::json j;
  j["format"] = p.version;
  j["model"] = p.model;
  j["device"] = p.device;
  j["host"] = p.host;
  j["threads"] = p.threads;
  j["ranks"] = p.ranks;
  j["sample_shape"] = p.sampleShape;
  j["classes"] = p.classes;
  j["batch_size"] = p.batchSize;
  j["train_rows"] = p.trainRows;
  j["rows"] = p.rows;
  j["loss_s"] = p.loss;
  j["load_s"] = p.load;
  j["overhead_per_batch_s"] = p.overheadPerBatch;
  j["overhead_per_microbatch_s"] = p.overheadPerMicrobatch;
  nlohmann::json blocks = nlohmann::json::array();
  for (const BlockProfile& b : p.blocks) {
    blocks.push_back({{"name", b.name},
                      {"param_bytes", b.paramBytes},
                      {"in_bytes_per_row", b.inBytesPerRow},
                      {"out_bytes_per_row", b.outBytesPerRow},
                      {"forward_s", b.forward},
                      {"backward_s", b.backward},
                      {"input_grad_s", b.inputGrad},
                      {"held_bytes", b.heldBytes},
                      {"saves_input", b.savesInput},
                      {"saves_output", b.savesOutput},
                      {"aux_s", b.aux},
                      {"aux_param_bytes", b.auxParamBytes},
                      {"inverse_s", b.inverse},
                      {"update_s", b.update},
                      {"opt_state_bytes", b.optStateBytes},
                      {"feedback_s", b.feedback},
                      {"feedback_bytes", b.feedbackBytes}});
  }
  j["blocks"] = blocks;
  nlohmann::json comm{{"ranks", p.comm.ranks}, {"kind", p.comm.kind}, {"latency_s", p.comm.latency},
                      {"bandwidth_Bps", p.comm.bandwidth}};
  for (const char* k : {"p2p", "allreduce"}) {
    nlohmann::json a = nlohmann::json::array();
    for (const CommPoint& c : std::string(k) == "p2p" ? p.comm.p2p : p.comm.allReduce)
      a.push_back({{"bytes", c.bytes}, {"seconds", c.seconds}});
    comm[k] = a;
  }
  j["comm"] = comm;
  j["config"] = p.config;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    if (!f) throw InputError(path + ": cannot write the profile");
    f << j.dump(1) << "\n";
    if (!f.flush()) throw InputError(path + ": cannot write the profile (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw InputError(path + ": cannot write the profile");
}

Profile readProfile(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw InputError(path + ": cannot open the profile");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": not JSON (" + std::string(e.what()) + ")");
  }
  std::string field;
  try {
    Profile p;
    p.origin = path;
    field = "format";
    if (!j.is_object() || j.value("format", "") != p.version)
      throw InputError(path + ": not a stagewise profile (expected \"format\": \"" + p.version + "\")");
    auto get = [&](const char* k, auto& out) {
      field = k;
      out = j.at(k).get<std::decay_t<decltype(out)>>();
    };
    get("model", p.model);
    get("device", p.device);
    get("host", p.host);
    get("threads", p.threads);
    get("ranks", p.ranks);
    get("sample_shape", p.sampleShape);
    get("classes", p.classes);
    get("batch_size", p.batchSize);
    get("train_rows", p.trainRows);
    get("rows", p.rows);
    get("loss_s", p.loss);
    get("load_s", p.load);
    get("config", p.config);
    get("overhead_per_batch_s", p.overheadPerBatch);
    get("overhead_per_microbatch_s", p.overheadPerMicrobatch);
    field = "blocks";
    for (const nlohmann::json& b : j.at("blocks")) {
      BlockProfile x;
      x.name = b.at("name").get<std::string>();
      x.paramBytes = b.at("param_bytes").get<double>();
      x.inBytesPerRow = b.at("in_bytes_per_row").get<double>();
      x.outBytesPerRow = b.at("out_bytes_per_row").get<double>();
      x.forward = b.at("forward_s").get<RowSeries>();
      x.backward = b.at("backward_s").get<RowSeries>();
      x.inputGrad = b.at("input_grad_s").get<RowSeries>();
      x.heldBytes = b.at("held_bytes").get<RowSeries>();
      x.savesInput = b.at("saves_input").get<bool>();
      x.savesOutput = b.at("saves_output").get<bool>();
      x.aux = b.at("aux_s").get<RowSeries>();
      x.auxParamBytes = b.at("aux_param_bytes").get<double>();
      x.inverse = b.at("inverse_s").get<RowSeries>();
      x.update = b.at("update_s").get<double>();
      x.optStateBytes = b.at("opt_state_bytes").get<double>();
      x.feedback = b.at("feedback_s").get<RowSeries>();
      x.feedbackBytes = b.at("feedback_bytes").get<double>();
      for (const RowSeries* s : {&x.forward, &x.backward, &x.heldBytes})
        if (s->size() != p.rows.size())
          throw InputError(path + ": block " + x.name + " has " + std::to_string(s->size()) + " figures for " +
                           std::to_string(p.rows.size()) + " row counts");
      p.blocks.push_back(std::move(x));
    }
    if (p.blocks.empty()) throw InputError(path + ": \"blocks\" is empty");
    if (p.rows.empty() || p.loss.size() != p.rows.size() || p.load.size() != p.rows.size())
      throw InputError(path + ": \"rows\", \"loss_s\" and \"load_s\" must have one entry per row count");
    field = "comm";
    const nlohmann::json& c = j.at("comm");
    p.comm.ranks = c.at("ranks").get<int>();
    p.comm.kind = c.at("kind").get<std::string>();
    p.comm.latency = c.at("latency_s").get<double>();
    p.comm.bandwidth = c.at("bandwidth_Bps").get<double>();
    for (const nlohmann::json& x : c.at("p2p")) p.comm.p2p.push_back({x.at("bytes"), x.at("seconds")});
    for (const nlohmann::json& x : c.at("allreduce")) p.comm.allReduce.push_back({x.at("bytes"), x.at("seconds")});
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": field \"" + field + "\": " + e.what());
  }
}

}  // namespace sw
