// Partition: how a model's blocks are cut into pipeline stages - an explicit boundary list from
// the config, or the contiguous cut that balances per-block costs (measured or counted).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "nn/Model.h"

namespace sw {

// Parses "0,3,6" (the first block of stages 1..S-1) for `numBlocks` blocks into S ranges.
// Throws ConfigError naming `key` when the list is not strictly increasing inside (0, numBlocks).
std::vector<BlockRange> partitionExplicit(const std::string& list, size_t numBlocks, int stages,
                                          const std::string& key);
// Contiguous partition minimising the most expensive stage (exact, by dynamic programming).
std::vector<BlockRange> partitionBalanced(const std::vector<double>& blockCost, int stages);

// Per-block cost of forward + backward at `rows` samples: measured seconds (state restored), or
// multiply-accumulates.
enum class BlockCost { kTime, kMacs };
std::vector<double> blockCosts(Model& m, int64_t rows, BlockCost how);

// The stages of a run: one range for one stage; the explicit list (`key`) when given; else the
// balanced cut of costs by `balance` ("macs", or measured time, which `agreeCosts` must make equal
// on every rank, e.g. by averaging them).
std::vector<BlockRange> choosePartition(Model& m, int stages, const std::string& list, const std::string& key,
                                        const std::string& balance, int64_t rows,
                                        const std::function<void(std::vector<double>&)>& agreeCosts);

}  // namespace sw
