// Partition: how a model's blocks are cut into pipeline stages - an explicit boundary list from
// the config, or the contiguous cut that balances per-block costs (measured or counted).
#pragma once
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

}  // namespace sw
