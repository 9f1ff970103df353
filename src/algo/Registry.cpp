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

std::vector<AlgoInfo>& table() {
  static std::vector<AlgoInfo> t = {
      {"bp", "backprop", "backprop on one rank", "", makeBackprop},
      {"dp", "backprop", "data parallel: replicas average gradients (bucketed allreduce)", "[dp]", makeBackprop},
      {"mp", "backprop", "model parallel: stages, one micro-batch at a time", "[pipe]", makeBackprop},
      {"gpipe", "backprop", "GPipe: all forwards, then all backwards, flushed", "[pipe]", makeBackprop},
      {"1f1b", "backprop", "1F1B (PipeDream-flush): one forward, one backward, flushed", "[pipe]", makeBackprop},
      {"pipedream", "pipedream", "PipeDream: asynchronous 1F1B with weight stashing", "[pipedream]", makePipeDream},
      {"spectrain", "pipedream", "SpecTrain: asynchronous 1F1B with weight prediction (v1, v2)", "[spectrain]",
       makePipeDream},
      {"petra", "petra", "PETRA: delayed-gradient stage pipeline on reversible nets (+ DSP, stashing)", "[petra]",
       makePetra},
      {"interlocking", "interlocking", "interlocking backprop: n-wise gradients across components", "[interlocking]",
       makeInterlocking},
      {"local", "interlocking", "local learning: each component on its auxiliary head's loss", "[interlocking]",
       makeInterlocking},
      {"parle", "parle", "Parle: coupled replicas (Elastic-SGD, Entropy-SGD as modes)", "[parle]", makeParle},
      {"dtp", "dtp", "difference target propagation, sequential", "[dtp]", makeDtp},
      {"dtp_parallel", "dtp", "difference target propagation, feedback layers spread over ranks", "[dtp]", makeDtp},
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
