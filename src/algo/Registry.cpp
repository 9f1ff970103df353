// The algorithm list. Each family's factory is declared in its folder's header.
#include "algo/Registry.h"

#include <sstream>

#include "algo/backprop/Backprop.h"
#include "algo/dtp/DtpAlgorithm.h"
#include "algo/interlocking/InterlockingAlgorithm.h"
#include "algo/parle/ParleAlgorithm.h"
#include "algo/petra/PetraAlgorithm.h"
#include "algo/pipedream/PipeDreamAlgorithm.h"
#include "core/Error.h"

namespace sw {
namespace {

// A factory for one member of a family.
template <class Kind, class Make>
std::function<std::unique_ptr<Algorithm>(const TrainConfig&)> as(Make make, Kind kind) {
  return [make, kind](const TrainConfig& cfg) { return make(cfg, kind); };
}

std::vector<AlgoInfo>& table() {
  using B = BackpropKind;
  static std::vector<AlgoInfo> t = {
      {"bp", "backprop", "backprop on one rank", "", as(makeBackprop, B::kBp)},
      {"dp", "backprop", "data parallel: replicas average gradients (bucketed allreduce)", "[dp]", as(makeBackprop, B::kDp)},
      {"mp", "backprop", "model parallel: stages, one micro-batch at a time", "[pipe]", as(makeBackprop, B::kMp)},
      {"gpipe", "backprop", "GPipe: all forwards, then all backwards, flushed", "[pipe]", as(makeBackprop, B::kGPipe)},
      {"1f1b", "backprop", "1F1B (PipeDream-flush): one forward, one backward, flushed", "[pipe]",
       as(makeBackprop, B::kOneFOneB)},
      {"pipedream", "pipedream", "PipeDream: asynchronous 1F1B with weight stashing", "[pipedream]",
       as(makePipeDream, PipeDreamKind::kPipeDream)},
      {"spectrain", "pipedream", "SpecTrain: asynchronous 1F1B with weight prediction (v1, v2)", "[spectrain]",
       as(makePipeDream, PipeDreamKind::kSpecTrain)},
      {"petra", "petra", "PETRA: delayed-gradient stage pipeline on reversible nets (+ DSP, stashing)", "[petra]",
       makePetra},
      {"interlocking", "interlocking", "interlocking backprop: n-wise gradients across components", "[interlocking]",
       as(makeInterlocking, InterlockingKind::kNWise)},
      {"local", "interlocking", "local learning: each component on its auxiliary head's loss", "[interlocking]",
       as(makeInterlocking, InterlockingKind::kLocal)},
      {"parle", "parle", "Parle: coupled replicas (Elastic-SGD, Entropy-SGD as modes)", "[parle]", makeParle},
      {"dtp", "dtp", "difference target propagation, sequential", "[dtp]", as(makeDtp, DtpKind::kSequential)},
      {"dtp_parallel", "dtp", "difference target propagation, feedback layers spread over ranks", "[dtp]",
       as(makeDtp, DtpKind::kLayerParallel)},
  };
  return t;
}

}  // namespace

const std::vector<AlgoInfo>& algorithms() { return table(); }

void registerAlgorithm(AlgoInfo info) { table().push_back(std::move(info)); }

std::string algorithmNames(const std::string& sep) {
  std::string s;
  for (const AlgoInfo& a : table()) s += (s.empty() ? "" : sep) + a.name;
  return s;
}

const AlgoInfo& findAlgorithm(const std::string& name) {
  for (const AlgoInfo& a : table())
    if (a.name == name) return a;
  throw ConfigError("train.algo: expected one of: " + algorithmNames() + ", got '" + name + "'");
}

std::unique_ptr<Algorithm> makeAlgorithm(const TrainConfig& cfg) { return findAlgorithm(cfg.train.algo).make(cfg); }

namespace {
class AlgorithmSchedule : public Schedule {
 public:
  explicit AlgorithmSchedule(std::unique_ptr<Algorithm> a, std::string name) : a_(std::move(a)), name_(std::move(name)) {}
  std::string_view name() const override { return name_; }
  bool flushed() const override { return a_->flushed(); }
  Program build(int stage, const ScheduleSpec& spec) const override {
    RankCoord me{.rank = stage, .world = spec.stages * spec.replicas, .stage = stage, .stages = spec.stages,
                 .replicas = spec.replicas};
    return a_->build(me, spec);
  }

 private:
  std::unique_ptr<Algorithm> a_;
  std::string name_;
};
}  // namespace

std::unique_ptr<Schedule> makeSchedule(const std::string& name) {
  findAlgorithm(name);
  return std::make_unique<AlgorithmSchedule>(makeAlgorithm(parseConfig("", {"train.algo=" + name})), name);
}

std::string algorithmHelp() {
  std::ostringstream os;
  for (const AlgoInfo& a : table()) {
    os << "  " << a.name;
    for (size_t i = a.name.size(); i < 14; ++i) os << ' ';
    os << a.summary << (a.sections.empty() ? "" : "  " + a.sections) << "\n";
  }
  return os.str();
}

}  // namespace sw
