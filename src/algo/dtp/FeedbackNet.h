// FeedbackNet: DTP's feedback (backward) network, built by inverting a forward Model block by
// block (spec seed-dtp.md 1.2). For a forward block conv(k, stride 1, same padding) -> act ->
// maxpool, the feedback block is G(v) = ConvT(act(Unpool(v; indices of F's pool)); W) + b, with W
// of the forward conv's shape [C_out, C_in, k, k]; for the head flatten -> linear it is
// G(v) = reshape(W v + b) with W [features, classes]. G is split into the part that does not
// depend on G's parameters, a = pre(v) (unpool + activation), and the affine part apply(a),
// because L-DRL and target propagation only ever need differences of G outputs, in which the
// bias cancels and the affine part is linear in a (spec 2.1, "upstream-gradient form").
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/Backend.h"
#include "nn/Layer.h"
#include "nn/Model.h"

namespace sw::dtp {

enum class BlockKind { kConvPool, kLinear };
enum class Bias { kAdd, kOmit };

// What the feedback block of forward block i needs to know about it (per-sample shapes).
struct ForwardBlockInfo {
  BlockKind kind = BlockKind::kConvPool;
  Shape in, out;        // F_i's input and output, no batch dimension
  Shape pooled;         // conv blocks: the pool's input (= conv output), no batch dimension
  int64_t kernel = 3, pad = 1;
  int64_t poolKernel = 2, poolStride = 2;
  Act act = Act::kElu;
  float alpha = 1.f;
  size_t poolLayer = 2;  // position of the MaxPool2d inside the block
};

// Describes every block of `m`; throws ConfigError naming the model when a block is not
// conv -> activation -> maxpool (conv blocks) or flatten -> linear (last block).
std::vector<ForwardBlockInfo> describeForward(Model& m, const std::string& modelName);

class FeedbackBlock {
 public:
  FeedbackBlock(Backend& be, const ForwardBlockInfo& f, Rng& rng, const std::string& name);
  // a = act(Unpool(v; idx)) for conv blocks, v itself for the linear head. v: [B, F_i out].
  Tensor pre(const Tensor& v, const Tensor& idx) const;
  // The affine part on a: r = W (*)^T a [+ b], shaped like F_i's input [B, F_i in].
  Tensor apply(const Tensor& a, Bias bias) const;
  // G_i(v) with the given pool indices.
  Tensor forward(const Tensor& v, const Tensor& idx) const { return apply(pre(v, idx), Bias::kAdd); }
  // weight.grad (+)= d<apply(a), dr>/dW (dr shaped like apply's output).
  void weightGrad(const Tensor& a, const Tensor& dr, Accumulate acc);
  Param& weight() { return w_; }
  Param& bias() { return b_; }
  const ForwardBlockInfo& info() const { return f_; }
  Backend& backend() const { return be_; }
  // Multiply-accumulates of one apply() for a batch of n.
  double macs(int64_t n) const;

 private:
  ConvGeom geom(int64_t n) const;  // the forward conv's geometry (x-space -> pooled space)
  Backend& be_;
  ForwardBlockInfo f_;
  Param w_, b_;
};

class FeedbackNet {
 public:
  // Builds G_0..G_L for the blocks of `forward`, initialised as PyTorch does (uniform in
  // +-1/sqrt(fan_in), fan_in from the ConvT weight's dim 1 times k*k, or `classes` for the
  // head) from a stream derived from `seed`.
  FeedbackNet(Backend& be, Model& forward, const std::string& modelName, uint64_t seed);
  int numBlocks() const { return int(blocks_.size()); }
  FeedbackBlock& block(int i) { return *blocks_.at(size_t(i)); }
  // Weights and biases of G_0..G_L in that order (checkpoints).
  std::vector<Param*> params();
  int64_t numParams();
  // Symmetric initialisation (tests, spec 7 E7): ConvT weight = conv weight, W_G_L = W_F_L^T.
  void initSymmetric(Model& forward);

 private:
  std::vector<std::unique_ptr<FeedbackBlock>> blocks_;
};

// Angle in degrees between G_i's weight and F_i's weight read as the same linear map (conv
// blocks: the same tensor; head: W_G vs W_F^T), flattened, cosine clamped to [-1, 1] (the
// official repository's metric, spec 6.3 pitfall 12).
double feedbackAngle(FeedbackBlock& g, Model& forward, int block);
// The angle in degrees between two vectors given <a,b>, |a|^2 and |b|^2 (90 when either is zero).
double angleDegrees(double ab, double aa, double bb);
// |W_G| / |W_F|: the feedback weight's norm relative to the forward weight it should match.
double feedbackNormRatio(FeedbackBlock& g, Model& forward, int block);

}  // namespace sw::dtp
