// Model: blocks, ranges, parameter collection.
#include "nn/Model.h"

#include <algorithm>
#include <sstream>

#include "core/Error.h"

namespace sw {

Model::Model(Backend& be, Shape sampleShape, int64_t classes, uint64_t seed)
    : be_(be), sample_(std::move(sampleShape)), classes_(classes),
      initRng_(Rng::derive(seed, 1)), dropoutRng_(Rng::derive(seed, 2)) {}

Sequential& Model::addBlock(const std::string& name) {
  blocks_.push_back(std::make_unique<Sequential>(be_));
  names_.push_back(name);
  blocks_.back()->setName(name);
  return *blocks_.back();
}

BlockRange Model::clamp(BlockRange r) const {
  r.end = std::min(r.end, blocks_.size());
  SW_CHECK(r.begin <= r.end, "bad block range");
  return r;
}

Tensor Model::forward(const Tensor& x, Ctx& slot, Mode mode, BlockRange r) {
  r = clamp(r);
  Tensor h = x;
  for (size_t i = r.begin; i < r.end; ++i) h = blocks_[i]->forward(h, slot.child(i), mode);
  return h;
}

Tensor Model::backward(const Tensor& dy, Ctx& slot, BlockRange r, InputGrad ig) {
  r = clamp(r);
  Tensor g = dy;
  for (size_t i = r.end; i-- > r.begin;) {
    InputGrad need = i == r.begin ? ig : InputGrad::kNeeded;
    g = blocks_[i]->backward(g, slot.child(i), need);
  }
  return g;
}

std::vector<Param*> Model::params(BlockRange r, Aux aux) {
  r = clamp(r);
  std::vector<Param*> out;
  for (size_t i = r.begin; i < r.end; ++i) blocks_[i]->collectParams(out);
  if (aux == Aux::kInclude)
    for (size_t i = r.begin; i < std::min(r.end, aux_.size()); ++i)
      if (aux_[i]) aux_[i]->collectParams(out);
  return out;
}

std::vector<Buffer*> Model::buffers(BlockRange r, Aux aux) {
  r = clamp(r);
  std::vector<Buffer*> out;
  for (size_t i = r.begin; i < r.end; ++i) blocks_[i]->collectBuffers(out);
  if (aux == Aux::kInclude)
    for (size_t i = r.begin; i < std::min(r.end, aux_.size()); ++i)
      if (aux_[i]) aux_[i]->collectBuffers(out);
  return out;
}

Sequential& Model::attachAux(size_t block, std::unique_ptr<Sequential> head) {
  SW_CHECK(block < blocks_.size() && head, "attachAux: no block " + std::to_string(block));
  if (aux_.size() < blocks_.size()) aux_.resize(blocks_.size());
  SW_CHECK(!aux_[block], "block " + names_[block] + " already has an auxiliary head");
  head->setName("aux." + names_[block]);
  aux_[block] = std::move(head);
  return *aux_[block];
}

Sequential* Model::aux(size_t block) { return block < aux_.size() ? aux_[block].get() : nullptr; }

void Model::zeroGrad(BlockRange r) {
  for (Param* p : params(r)) p->gradFresh = true;
}

int64_t Model::numParams() {
  int64_t n = 0;
  for (Param* p : params()) n += p->value.numel();
  return n;
}

Shape Model::blockOutputShape(size_t i, int64_t n) const {
  std::vector<int64_t> d{n};
  for (int64_t v : sample_.dims()) d.push_back(v);
  Shape s(d);
  for (size_t b = 0; b <= i; ++b) s = blocks_[b]->outputShape(s);
  return s;
}

double Model::blockMacs(size_t i, int64_t n) const {
  Shape in = i == 0 ? Shape() : blockOutputShape(i - 1, n);
  if (i == 0) {
    std::vector<int64_t> d{n};
    for (int64_t v : sample_.dims()) d.push_back(v);
    in = Shape(d);
  }
  return blocks_[i]->macs(in);
}

std::string Model::summary() const {
  std::ostringstream os;
  double total = 0;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    double m = blockMacs(i, 1);
    total += m;
    os << "  " << names_[i] << " -> " << blockOutputShape(i, 1).str() << "  "
       << m / 1e6 << " MMAC\n";
  }
  os << "  total " << total / 1e6 << " MMAC/sample";
  return os.str();
}

}  // namespace sw
