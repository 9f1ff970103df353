// Stage partitions: explicit boundaries, the balanced cut, and the per-block costs it balances.
#include "nn/Partition.h"

#include <algorithm>
#include <limits>
#include <sstream>

#include "core/Clock.h"
#include "core/Error.h"
#include "core/Strings.h"

namespace sw {

std::vector<BlockRange> partitionExplicit(const std::string& list, size_t numBlocks, int stages,
                                          const std::string& key) {
  std::vector<size_t> cuts{0};
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const int64_t v = parseInt(item).value_or(-1);
    if (v <= 0 || size_t(v) >= numBlocks || size_t(v) <= cuts.back())
      throw ConfigError(key + " = " + list + ": '" + item + "' must be a block index strictly "
                        "increasing within 1.." + std::to_string(numBlocks - 1) +
                        " (the first block of each stage after stage 0)");
    cuts.push_back(size_t(v));
  }
  if (int(cuts.size()) != stages)
    throw ConfigError(key + " = " + list + ": lists " + std::to_string(cuts.size() - 1) +
                      " stage boundaries, pipe.stages = " + std::to_string(stages) + " needs " +
                      std::to_string(stages - 1));
  cuts.push_back(numBlocks);
  std::vector<BlockRange> out;
  for (int s = 0; s < stages; ++s) out.push_back({cuts[s], cuts[s + 1]});
  return out;
}

std::vector<BlockRange> partitionBalanced(const std::vector<double>& cost, int stages) {
  const size_t n = cost.size();
  if (stages < 1 || size_t(stages) > n)
    throw ConfigError("pipe.stages = " + std::to_string(stages) + " but the model has " +
                      std::to_string(n) + " blocks (each stage needs at least one)");
  std::vector<double> prefix(n + 1, 0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + cost[i];
  const double inf = std::numeric_limits<double>::infinity();
  // best[s][i]: minimal bottleneck of splitting blocks [0, i) into s stages; cut[s][i] = start of
  // the last stage. Ties prefer the later cut, which keeps early stages (that also hold stashed
  // activations longest in 1F1B) light.
  std::vector<std::vector<double>> best(stages + 1, std::vector<double>(n + 1, inf));
  std::vector<std::vector<size_t>> cut(stages + 1, std::vector<size_t>(n + 1, 0));
  best[0][0] = 0;
  for (int s = 1; s <= stages; ++s)
    for (size_t i = size_t(s); i <= n; ++i)
      for (size_t j = size_t(s - 1); j < i; ++j) {
        const double v = std::max(best[s - 1][j], prefix[i] - prefix[j]);
        if (v <= best[s][i]) {
          best[s][i] = v;
          cut[s][i] = j;
        }
      }
  std::vector<BlockRange> out(stages);
  size_t end = n;
  for (int s = stages; s >= 1; --s) {
    out[s - 1] = {cut[s][end], end};
    end = cut[s][end];
  }
  return out;
}

std::vector<double> blockCosts(Model& m, int64_t rows, BlockCost how) {
  const size_t nb = m.numBlocks();
  std::vector<double> cost(nb, 0);
  if (how == BlockCost::kMacs) {
    for (size_t i = 0; i < nb; ++i) cost[i] = 3 * m.blockMacs(i, rows);  // fwd + 2x bwd
    return cost;
  }
  // Measured forward+backward seconds per block on one micro-batch. Model state touched by the
  // measurement (BN statistics, dropout stream, gradients) is restored afterwards.
  Backend& be = m.backend();
  std::vector<Tensor> saved;
  for (Buffer* b : m.buffers()) saved.push_back(be.toHost(b->value).clone());
  const Rng::State rs = m.dropoutRng().state();
  for (size_t i = 0; i < nb; ++i) {
    std::vector<int64_t> d{rows};
    for (int64_t v : m.sampleShape().dims()) d.push_back(v);
    Tensor x = be.empty(i == 0 ? Shape(d) : m.blockOutputShape(i - 1, rows));
    be.fill(x, 0.5f);
    for (int rep = 0; rep < 3; ++rep) {
      const auto t = Clock::now();
      Ctx ctx;
      Tensor y = m.forward(x, ctx, Mode::kTrain, {i, i + 1});
      Tensor dy = be.empty(y.shape());
      be.fill(dy, 1e-3f);
      m.backward(dy, ctx, {i, i + 1}, i == 0 ? InputGrad::kSkip : InputGrad::kNeeded);
      be.synchronize();
      if (rep > 0) cost[i] += secondsSince(t);
    }
  }
  size_t k = 0;
  for (Buffer* b : m.buffers()) be.copy(saved[k++], b->value);
  m.dropoutRng().setState(rs);
  m.zeroGrad();
  return cost;
}

std::vector<BlockRange> choosePartition(Model& m, int stages, const std::string& list, const std::string& key,
                                        const std::string& balance, int64_t rows,
                                        const std::function<void(std::vector<double>&)>& agreeCosts) {
  const size_t nb = m.numBlocks();
  if (stages <= 1) return {BlockRange{0, nb}};
  if (!list.empty()) return partitionExplicit(list, nb, stages, key);
  const bool macs = balance == "macs";
  std::vector<double> cost = blockCosts(m, rows, macs ? BlockCost::kMacs : BlockCost::kTime);
  if (!macs) agreeCosts(cost);
  return partitionBalanced(cost, stages);
}

}  // namespace sw
