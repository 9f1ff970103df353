// The Trainer's interlocking / local backprop parts (seed-interlocking.md): the component split,
// the auxiliary heads, and the single-process round. With one component per rank the rounds
// run through the Executor like every other stage schedule (schedule/algorithms/
// Interlocking.cpp); with pipe.stages = 1 every component lives in this process and each
// mini-batch runs through InterlockingLoop, which computes the same numbers.
#include <chrono>
#include <cmath>
#include <sstream>

#include "coord/Coordinator.h"
#include "core/Error.h"
#include "core/Log.h"
#include "nn/AuxHead.h"
#include "train/Trainer.h"

namespace sw {
namespace {

using Clock = std::chrono::steady_clock;
double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Stream of the seed that initialises component c's aux head: the same on every rank.
constexpr uint64_t kAuxInitStream = 0x1a0000;
const char* kSplitKey = "interlocking.blocks_per_component";

// "5,4,4,rest": block counts of components 0..K-2, the last takes the rest.
std::vector<StageRange> parseSplit(const std::string& v, size_t numBlocks, const std::string& model) {
  std::vector<std::string> items;
  std::istringstream is(v);
  for (std::string t; std::getline(is, t, ',');) {
    const size_t a = t.find_first_not_of(" \t"), b = t.find_last_not_of(" \t");
    items.push_back(a == std::string::npos ? "" : t.substr(a, b - a + 1));
  }
  auto bad = [&](const std::string& why) {
    return ConfigError(std::string(kSplitKey) + " = '" + v + "': " + why + " (e.g. 5,4,4,rest; model " + model + " has " +
                       std::to_string(numBlocks) + " blocks, the stem and the output head one each)");
  };
  if (items.empty() || items.back() != "rest") throw bad("must end in 'rest'");
  std::vector<StageRange> parts;
  size_t begin = 0;
  for (size_t i = 0; i + 1 < items.size(); ++i) {
    size_t pos = 0;
    long long n = 0;
    try {
      n = std::stoll(items[i], &pos);
    } catch (...) {
      pos = 0;
    }
    if (pos == 0 || pos != items[i].size() || n <= 0) throw bad("'" + items[i] + "' is not a positive block count");
    if (begin + size_t(n) >= numBlocks) throw bad("leaves no block for 'rest'");
    parts.push_back({begin, begin + size_t(n)});
    begin += size_t(n);
  }
  parts.push_back({begin, numBlocks});
  return parts;
}

// interlocking.aux: one architecture for every aux head, or a comma list with one per component
// but the last (feature maps of different kinds: "conv16_bn_gbpl_fc, conv32_bn_gbpl_fc, fc").
std::vector<std::string> auxList(const std::string& v) {
  std::vector<std::string> out;
  std::istringstream is(v);
  for (std::string t; std::getline(is, t, ',');) {
    const size_t a = t.find_first_not_of(" \t"), b = t.find_last_not_of(" \t");
    out.push_back(a == std::string::npos ? "" : t.substr(a, b - a + 1));
  }
  return out;
}

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

}  // namespace

bool Trainer::interlocking() const { return cfg_.train.algo == "interlocking" || cfg_.train.algo == "local"; }

void Trainer::resolveComponents() {
  const std::string& split = cfg_.interlocking.blocksPerComponent;
  const size_t nb = model_->numBlocks();
  std::vector<size_t> ends;  // blocks an aux head may read (validated below)
  const std::vector<std::string> aux = auxList(cfg_.interlocking.aux);
  if (!split.empty()) {
    components_ = parseSplit(split, nb, cfg_.model.name);
    if (spec_.stages > 1) {
      if (int(components_.size()) != spec_.stages)
        throw ConfigError(std::string(kSplitKey) + " = " + split + " gives " + std::to_string(components_.size()) +
                          " components but pipe.stages = " + std::to_string(spec_.stages) +
                          " (one component per rank; pipe.stages = 1 runs them all in one process)");
      if (!cfg_.pipe.partition.empty())
        throw ConfigError(std::string(kSplitKey) + " and pipe.partition both set: give the split once");
      std::string cut;
      for (size_t c = 1; c < components_.size(); ++c) {
        if (c > 1) cut += ',';
        cut += std::to_string(components_[c].begin);
      }
      cfg_.pipe.partition = cut;
    }
    for (size_t c = 0; c + 1 < components_.size(); ++c) ends.push_back(components_[c].end - 1);
  } else if (spec_.stages == 1) {
    components_ = {StageRange{0, nb}};
  } else if (aux.size() == 1) {
    for (size_t i = 0; i + 1 < nb; ++i) ends.push_back(i);  // the partition is chosen later
  }
  // Every aux head the run can build must take its block's output (bad strings fail here,
  // on every rank, before anything runs; per-component lists with a partition still to be
  // measured are checked when the heads are built).
  Rng scratch(0);
  const size_t K = components_.empty() ? size_t(spec_.stages) : components_.size();
  for (size_t k = 0; k < ends.size(); ++k)
    (void)buildAuxHead(*be_, auxFor(aux, aux.size() == 1 ? 0 : k, K), sampleOf(model_->blockOutputShape(ends[k], 1)),
                       model_->classes(), scratch, "interlocking.aux (on block " + model_->blockName(ends[k]) + ")");
  if (aux.size() > 1) (void)auxFor(aux, 0, K);  // the count
}

void Trainer::attachAuxHeads(ExecutorOptions& eo) {
  if (spec_.stages > 1) components_ = parts_;
  const int K = int(components_.size());
  const InterlockRule rule{.components = K, .distance = spec_.distance, .mode = spec_.pairwise};
  rule.validate("train.algo = " + cfg_.train.algo);
  int64_t auxParams = 0;
  for (int c = 0; c + 1 < K; ++c) {
    if (spec_.stages > 1 && c != coord_.stage) continue;  // a rank holds its own head only
    Rng rng = Rng::derive(cfg_.train.seed, kAuxInitStream + uint64_t(c));
    const size_t last = components_[size_t(c)].end - 1;
    Sequential& head = model_->attachAux(
        last, buildAuxHead(*be_, auxFor(auxList(cfg_.interlocking.aux), size_t(c), size_t(K)),
                           sampleOf(model_->blockOutputShape(last, 1)), model_->classes(), rng,
                           "interlocking.aux (component " + std::to_string(c) + ")"));
    std::vector<Param*> ps;
    head.collectParams(ps);
    for (Param* p : ps) auxParams += p->value.numel();
  }
  if (spec_.stages == 1) {
    std::vector<BlockRange> comps;
    for (const StageRange& r : components_) comps.push_back({r.begin, r.end});
    loop_ = std::make_unique<InterlockingLoop>(*model_, comps, rule);
  } else {
    eo.interlock = rule;
    eo.boundedSends = true;
  }
  if (world_->rank() == 0) {
    std::ostringstream os;
    for (int c = 0; c < K; ++c)
      os << (c ? ", " : "") << "c" << c << " = blocks " << components_[size_t(c)].begin << ".." << components_[size_t(c)].end - 1;
    const int n = spec_.distance + 1;
    SW_INFO(cfg_.train.algo << ": " << K << " components (" << os.str() << "), "
                            << (spec_.distance == 0 ? std::string("local") : std::to_string(n) + "-wise")
                            << (spec_.pairwise != PairwiseMode::kNextOnly ? std::string(" ") + pairwiseModeName(spec_.pairwise) : "")
                            << (spec_.distance >= K - 1 && K > 1 ? " (= global backprop)" : "") << ", aux head '"
                            << cfg_.interlocking.aux << "'" << (spec_.stages == 1 ? " (" + std::to_string(auxParams) + " aux parameters)" : "")
                            << (spec_.stages == 1 ? ", all in this process" : ", one per rank"));
    if (K == 1) SW_INFO(cfg_.train.algo << " with one component is plain backprop (set " << kSplitKey << ")");
  }
}

RoundStats Trainer::runLoopRound(int epoch, int64_t firstBatch, int batches) {
  RoundStats st;
  const auto tr = Clock::now();
  const int64_t nb = loader_->batchesPerEpoch();
  for (int b = 0; b < batches; ++b) {
    Batch batch;
    if (!loader_->next(batch)) throw Error("data loader ended early inside a round");
    const auto t = Clock::now();
    const LossResult r = loop_->step(be_->fromHost(batch.x), be_->fromHost(batch.labels));
    if (!std::isfinite(r.loss))
      throw NumericError("non-finite training loss " + std::to_string(r.loss) + " on batch " +
                         std::to_string(firstBatch + b) + " (lower optim.lr?)");
    st.compute += secondsSince(t);
    st.lossSum += double(r.loss) * double(batch.size());
    st.correct += r.correct;
    st.seen += batch.size();
    const auto to = Clock::now();
    opt_->step(lr_->at(epoch, firstBatch + b, nb));
    model_->zeroGrad();
    st.optimizer += secondsSince(to);
    ++st.updates;
  }
  st.total = secondsSince(tr);
  return st;
}

}  // namespace sw
