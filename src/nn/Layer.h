// Layer: forward and backward of one network piece. Activations saved for backward live in a Ctx
// owned by the caller (one Ctx per micro-batch slot), never in members, because pipelined
// schedules keep several micro-batches in flight. Parameter gradients accumulate: the first
// backward after zeroGrad() writes, later ones add (gradient accumulation, several micro-batches).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/Backend.h"
#include "core/Error.h"
#include "core/Rng.h"
#include "core/Tensor.h"

namespace sw {

// kRecompute: a training-mode forward run again to rebuild a context (activation
// checkpointing, reversible reconstruction): batch statistics as in training, but batch-norm
// running statistics are left untouched and dropout must be given the forward's RNG state.
// kCalibrate: batch norm normalises with batch statistics and updates its running statistics
// (as in training), dropout is the identity and nothing is saved for a backward.
enum class Mode { kTrain, kEval, kRecompute, kCalibrate };
// Whether a forward saves what its backward needs (and draws dropout masks).
inline bool training(Mode m) { return m == Mode::kTrain || m == Mode::kRecompute; }
enum class InputGrad { kNeeded, kSkip };  // kSkip: the caller does not need dx (first layer)
enum class WeightDecay { kApply, kExclude };

struct Param {
  std::string name;
  Tensor value, grad;
  WeightDecay decay = WeightDecay::kApply;
  // True after zeroGrad() until a backward writes the gradient: lets the first micro-batch write
  // instead of clearing and adding, and lets optimizers skip parameters that got no gradient.
  bool gradFresh = true;
  // True during an input-only vector-Jacobian product (interlocking backprop's messages,
  // nn/AuxHead.h inputOnlyBackward): backward leaves grad and gradFresh untouched and skips the
  // weight-gradient computation. Every layer with parameters honours it.
  bool skipGrad = false;
  Accumulate takeAcc() {
    Accumulate a = gradFresh ? Accumulate::kNo : Accumulate::kYes;
    gradFresh = false;
    return a;
  }
};

// Non-trainable state saved in checkpoints (batch-norm running statistics).
struct Buffer {
  std::string name;
  Tensor value;
};

// Per-micro-batch saved state of one layer (and its children for composite layers).
struct Ctx {
  std::vector<Tensor> saved;
  Shape inShape;
  std::vector<Ctx> sub;
  Ctx& child(size_t i) {
    if (sub.size() <= i) sub.resize(i + 1);
    return sub[i];
  }
  void clear() {
    saved.clear();
    sub.clear();
  }
};

class Layer {
 public:
  explicit Layer(Backend& be) : be_(be) {}
  virtual ~Layer() = default;
  virtual std::string kind() const = 0;
  virtual Shape outputShape(const Shape& in) const = 0;
  virtual Tensor forward(const Tensor& x, Ctx& ctx, Mode mode) = 0;
  virtual Tensor backward(const Tensor& dy, Ctx& ctx, InputGrad ig) = 0;
  // Reversible layers (RevNet couplings) rebuild their input from their output: inverse(y)
  // returns x with forward(x) = y up to rounding, using the current parameters, and fills `ctx`
  // as a Mode::kRecompute forward on x would, so backward() can follow directly (PETRA).
  virtual bool reversible() const { return false; }
  virtual Tensor inverse(const Tensor& y, Ctx& ctx) {
    (void)y;
    (void)ctx;
    throw Error(name_ + " (" + kind() + ") is not reversible");
  }
  // Appends parameters/buffers with names prefixed by `prefix`.
  virtual void collectParams(std::vector<Param*>& out) { (void)out; }
  virtual void collectBuffers(std::vector<Buffer*>& out) { (void)out; }
  // Multiply-accumulates of one forward for input shape `in` (used to balance stages).
  virtual double macs(const Shape& in) const {
    (void)in;
    return 0;
  }
  // Gives parameter/buffer names their full path ("blocks.2.conv1.weight").
  virtual void setName(const std::string& n) { name_ = n; }
  const std::string& name() const { return name_; }
  Backend& backend() { return be_; }

 protected:
  Backend& be_;
  std::string name_;
};

using LayerPtr = std::unique_ptr<Layer>;

// Parameter initialisations used by the model zoo.
enum class Init {
  kPytorchDefault,  // weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  kKaimingNormalFanOut,  // weight N(0, 2/fan_out) (torchvision ResNet); bias default
  kKaimingNormalFanOutZeroBias,  // weight N(0, 2/fan_out), bias 0 (PipeDream/SpecTrain convs)
  kNormal001ZeroBias,    // weight N(0, 0.01^2), bias 0 (PipeDream/SpecTrain linear layers)
};

}  // namespace sw
