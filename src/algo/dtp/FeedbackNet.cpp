// Feedback blocks on the Backend's convolution, pooling and GEMM primitives. A ConvTranspose2d
// with weight W is the adjoint of the conv with weight W, so G's forward is the conv's
// backward-data and G's weight gradient is the conv's backward-filter with the roles swapped (the
// ConvT output gradient plays the conv input, the ConvT input plays the conv output gradient).
#include "algo/dtp/FeedbackNet.h"

#include <cmath>

#include "core/Error.h"
#include "nn/Conv.h"
#include "nn/Elementwise.h"
#include "nn/Init.h"
#include "nn/Linear.h"
#include "nn/Pool.h"

namespace sw::dtp {
namespace {

Shape batched(const Shape& perSample, int64_t n) {
  std::vector<int64_t> d{n};
  d.insert(d.end(), perSample.dims().begin(), perSample.dims().end());
  return Shape(std::move(d));
}

Shape unbatched(const Shape& s) {
  return Shape(std::vector<int64_t>(s.dims().begin() + 1, s.dims().end()));
}

[[noreturn]] void unsupported(const std::string& model, size_t block, const std::string& why) {
  throw ConfigError("train.algo = dtp/dtp_parallel cannot build a feedback network for model." + model +
                    ": block " + std::to_string(block) + " " + why +
                    " (supported: blocks conv(stride 1, same padding) -> activation -> maxpool, then flatten -> "
                    "linear, as in simple_vgg)");
}

}  // namespace

std::vector<ForwardBlockInfo> describeForward(Model& m, const std::string& modelName) {
  const size_t nb = m.numBlocks();
  if (nb < 2) unsupported(modelName, 0, "is the only block");
  std::vector<ForwardBlockInfo> out;
  for (size_t i = 0; i < nb; ++i) {
    Sequential& b = m.block(i);
    ForwardBlockInfo f;
    f.in = i == 0 ? m.sampleShape() : unbatched(m.blockOutputShape(i - 1, 1));
    f.out = unbatched(m.blockOutputShape(i, 1));
    if (i + 1 < nb) {
      auto* conv = b.size() == 3 ? dynamic_cast<Conv2d*>(&b.at(0)) : nullptr;
      auto* act = conv ? dynamic_cast<Activation*>(&b.at(1)) : nullptr;
      auto* pool = act ? dynamic_cast<MaxPool2d*>(&b.at(2)) : nullptr;
      if (!pool) unsupported(modelName, i, "is not conv -> activation -> maxpool");
      const ConvOpts& o = conv->opts();
      if (o.stride != 1 || 2 * o.pad + 1 != o.kernel)
        unsupported(modelName, i, "has a conv with stride " + std::to_string(o.stride) + " and padding " +
                                      std::to_string(o.pad) + " (kernel " + std::to_string(o.kernel) + ")");
      if (!conv->bias().value.defined()) unsupported(modelName, i, "has a conv without bias");
      f.kind = BlockKind::kConvPool;
      f.kernel = o.kernel;
      f.pad = o.pad;
      f.act = act->act();
      f.alpha = act->alpha();
      f.poolKernel = pool->kernel();
      f.poolStride = pool->stride();
      f.poolLayer = 2;
      f.pooled = Shape{o.out, f.in[1], f.in[2]};
      if (f.poolKernel != f.poolStride || f.in[1] % f.poolKernel || f.in[2] % f.poolKernel)
        unsupported(modelName, i, "has a pool whose windows do not tile its input " + f.pooled.str());
    } else {
      auto* lin = b.size() == 2 && dynamic_cast<Flatten*>(&b.at(0)) ? dynamic_cast<Linear*>(&b.at(1)) : nullptr;
      if (!lin) unsupported(modelName, i, "(the last) is not flatten -> linear");
      if (!lin->bias().value.defined()) unsupported(modelName, i, "has a linear layer without bias");
      f.kind = BlockKind::kLinear;
    }
    out.push_back(f);
  }
  return out;
}

FeedbackBlock::FeedbackBlock(Backend& be, const ForwardBlockInfo& f, Rng& rng, const std::string& name)
    : be_(be), f_(f) {
  if (f.kind == BlockKind::kConvPool) {
    const int64_t cOut = f.pooled[0], cIn = f.in[0], k = f.kernel;
    // PyTorch's ConvTranspose2d(cOut -> cIn) weight is [cOut, cIn, k, k]; fan_in uses dim 1.
    const Shape ws{cOut, cIn, k, k};
    w_.value = initWeight(be, ws, cIn * k * k, cOut * k * k, Init::kPytorchDefault, rng);
    w_.grad = be.zeros(ws);
    b_.value = initBias(be, cIn, cIn * k * k, rng);
  } else {
    const int64_t classes = f.out.numel(), features = f.in.numel();
    w_.value = initWeight(be, Shape{features, classes}, classes, features, Init::kPytorchDefault, rng);
    w_.grad = be.zeros(Shape{features, classes});
    b_.value = initBias(be, features, classes, rng);
  }
  // The bias receives exactly zero L-DRL gradient (it cancels in every difference, spec 2.1) and
  // is never updated: it has no gradient tensor and no optimizer state.
  b_.decay = WeightDecay::kExclude;
  w_.name = name + ".weight";
  b_.name = name + ".bias";
}

ConvGeom FeedbackBlock::geom(int64_t n) const {
  return ConvGeom::make(batched(f_.in, n), f_.pooled[0], f_.kernel, f_.kernel, 1, f_.pad);
}

double FeedbackBlock::macs(int64_t n) const {
  if (f_.kind == BlockKind::kLinear) return double(n) * f_.in.numel() * f_.out.numel();
  const ConvGeom g = geom(n);
  return double(g.n) * g.k * g.oh * g.ow * g.c * g.r * g.s;
}

Tensor FeedbackBlock::pre(const Tensor& v, const Tensor& idx) const {
  const int64_t n = v.dim(0);
  if (v.shape() != batched(f_.out, n))
    throw ShapeError(w_.name + ": feedback input " + v.shape().str() + ", expected " + batched(f_.out, n).str());
  if (f_.kind == BlockKind::kLinear) return v.reshape(Shape{n, f_.out.numel()});
  if (!idx.defined() || idx.shape() != v.shape())
    throw ShapeError(w_.name + ": pool indices do not match the feedback input " + v.shape().str());
  const Shape ps = batched(f_.pooled, n);
  Tensor a = be_.empty(ps);
  be_.maxUnpoolForward(v, idx, a, PoolGeom::make(ps, f_.poolKernel, f_.poolStride, 0));
  // In place: the activation is elementwise (and act(0) = 0 keeps the unpooled zeros).
  be_.actForward(f_.act, f_.alpha, a, a);
  return a;
}

Tensor FeedbackBlock::apply(const Tensor& a, Bias bias) const {
  const int64_t n = a.dim(0);
  if (f_.kind == BlockKind::kLinear) {
    Tensor r = be_.empty(Shape{n, f_.in.numel()});
    be_.gemm(a, w_.value, r, GemmOpts{.transB = true});
    if (bias == Bias::kAdd) be_.addBias(r, b_.value);
    return r.reshape(batched(f_.in, n));
  }
  const ConvGeom g = geom(n);
  Tensor r = be_.empty(batched(f_.in, n));
  be_.convBackwardData(a, w_.value, r, g, Accumulate::kNo);
  if (bias == Bias::kAdd) be_.addBias(r, b_.value);
  return r;
}

void FeedbackBlock::weightGrad(const Tensor& a, const Tensor& dr, Accumulate acc) {
  const int64_t n = a.dim(0);
  if (f_.kind == BlockKind::kLinear) {
    const Tensor dr2 = dr.reshape(Shape{n, f_.in.numel()});
    be_.gemm(dr2, a, w_.grad, GemmOpts{.transA = true, .beta = acc == Accumulate::kYes ? 1.f : 0.f});
    return;
  }
  be_.convBackwardFilter(dr, a, w_.grad, nullptr, geom(n), acc);
}

FeedbackNet::FeedbackNet(Backend& be, Model& forward, const std::string& modelName, uint64_t seed) {
  const auto infos = describeForward(forward, modelName);
  // Its own init stream: the forward net's initialisation is the same with or without DTP.
  Rng rng = Rng::derive(seed, 0xDEF0'0001ull);
  for (size_t i = 0; i < infos.size(); ++i)
    blocks_.push_back(std::make_unique<FeedbackBlock>(be, infos[i], rng, "feedback.G" + std::to_string(i)));
}

std::vector<Param*> FeedbackNet::params() {
  std::vector<Param*> out;
  for (auto& b : blocks_) {
    out.push_back(&b->weight());
    out.push_back(&b->bias());
  }
  return out;
}

int64_t FeedbackNet::numParams() {
  int64_t n = 0;
  for (Param* p : params()) n += p->value.numel();
  return n;
}

namespace {
// The forward weight of block i: the conv (first layer) or the head's linear (last layer).
Param& forwardWeight(Model& m, int i) {
  Sequential& b = m.block(size_t(i));
  if (auto* c = dynamic_cast<Conv2d*>(&b.at(0))) return c->weight();
  return dynamic_cast<Linear&>(b.at(b.size() - 1)).weight();
}
}  // namespace

void FeedbackNet::initSymmetric(Model& forward) {
  Backend& be = forward.backend();
  for (int i = 0; i < numBlocks(); ++i) {
    FeedbackBlock& g = block(i);
    Tensor f = be.toHost(forwardWeight(forward, i).value);
    Tensor w = Tensor::empty(g.weight().value.shape());
    if (g.info().kind == BlockKind::kConvPool) {
      std::copy(f.data(), f.data() + f.numel(), w.data());
    } else {
      const int64_t rows = w.dim(0), cols = w.dim(1);  // W_G [features, classes], W_F [classes, features]
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) w.data()[r * cols + c] = f.data()[c * rows + r];
    }
    be.copy(w, g.weight().value);
  }
}

double feedbackAngle(FeedbackBlock& g, Model& forward, int block) {
  Backend& be = forward.backend();
  const Tensor gw = be.toHost(g.weight().value), fw = be.toHost(forwardWeight(forward, block).value);
  double dot = 0, gg = 0, ff = 0;
  const bool linear = g.info().kind == BlockKind::kLinear;
  const int64_t rows = gw.dim(0), cols = gw.rank() > 1 ? gw.dim(1) : 1;
  for (int64_t i = 0; i < gw.numel(); ++i) {
    const double a = gw.data()[i];
    const double b = linear ? fw.data()[(i % cols) * rows + i / cols] : fw.data()[i];
    dot += a * b;
    gg += a * a;
    ff += b * b;
  }
  return angleDegrees(dot, gg, ff);
}

double angleDegrees(double ab, double aa, double bb) {
  if (aa == 0 || bb == 0) return 90.0;
  return std::acos(std::clamp(ab / std::sqrt(aa * bb), -1.0, 1.0)) * 180.0 / M_PI;
}

double feedbackNormRatio(FeedbackBlock& g, Model& forward, int block) {
  Backend& be = forward.backend();
  const double gg = be.sumSquares(g.weight().value), ff = be.sumSquares(forwardWeight(forward, block).value);
  return ff > 0 ? std::sqrt(gg / ff) : 0.0;
}

}  // namespace sw::dtp
