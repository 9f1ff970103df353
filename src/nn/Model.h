// Model: a network as an ordered list of named blocks. Blocks are the unit that schedules cut
// into pipeline stages; a block range [begin, end) runs forward/backward on its own.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/Sequential.h"

namespace sw {

struct BlockRange {
  size_t begin = 0, end = SIZE_MAX;
};

enum class Aux { kInclude, kExclude };

class Model {
 public:
  Model(Backend& be, Shape sampleShape, int64_t classes, uint64_t seed);
  Sequential& addBlock(const std::string& name);
  size_t numBlocks() const { return blocks_.size(); }
  Sequential& block(size_t i) { return *blocks_.at(i); }
  const std::string& blockName(size_t i) const { return names_.at(i); }

  Tensor forward(const Tensor& x, Ctx& slot, Mode mode, BlockRange r = {});
  // Returns dx of the range's input (undefined when ig == kSkip).
  Tensor backward(const Tensor& dy, Ctx& slot, BlockRange r = {}, InputGrad ig = InputGrad::kSkip);

  // Parameters/buffers of the range's blocks, then (kInclude) those of their auxiliary heads.
  std::vector<Param*> params(BlockRange r = {}, Aux aux = Aux::kInclude);
  std::vector<Buffer*> buffers(BlockRange r = {}, Aux aux = Aux::kInclude);
  void zeroGrad(BlockRange r = {});
  // Auxiliary heads (interlocking/local backprop, seed-interlocking.md 1.3): training-only
  // networks reading the output of block i. The range accessors above include them; forward()
  // and backward() never run them. aux(i) is nullptr when block i has none.
  Sequential& attachAux(size_t block, std::unique_ptr<Sequential> head);
  Sequential* aux(size_t block);
  int64_t numParams();
  // Per-sample input shape (C, H, W) or (F) and class count.
  const Shape& sampleShape() const { return sample_; }
  int64_t classes() const { return classes_; }
  // Output shape of block i for a batch of n.
  Shape blockOutputShape(size_t i, int64_t n) const;
  double blockMacs(size_t i, int64_t n) const;
  Rng& dropoutRng() { return dropoutRng_; }
  Rng& initRng() { return initRng_; }
  Backend& backend() { return be_; }
  std::string summary() const;

 private:
  BlockRange clamp(BlockRange r) const;
  Backend& be_;
  Shape sample_;
  int64_t classes_;
  Rng initRng_, dropoutRng_;
  std::vector<std::unique_ptr<Sequential>> blocks_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<Sequential>> aux_;  // per block, may be null
};

}  // namespace sw
