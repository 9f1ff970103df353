// Backend: the narrow compute surface every layer and optimizer calls. CpuBackend (OpenBLAS +
// OpenMP, our own im2col convolution) is the reference; CudaBackend (cuBLAS/cuDNN + kernels/) sits
// behind the same interface. All tensors are float32 NCHW; index tensors (pool argmax, labels)
// store int32 in the same 4-byte storage and are read with data<int32_t>().
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/Rng.h"

#include "core/Tensor.h"
#include "core/TensorCopier.h"

namespace sw {

struct GemmOpts {
  bool transA = false;
  bool transB = false;
  float alpha = 1.f;
  float beta = 0.f;
};

// Geometry of a 2-D convolution y = conv(x, w): x [n,c,h,w], w [k,c,r,s], y [n,k,oh,ow].
struct ConvGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;  // input
  int64_t k = 0, r = 0, s = 0;         // output channels, kernel height/width
  int64_t stride = 1, pad = 0;
  int64_t oh = 0, ow = 0;
  static ConvGeom make(const Shape& x, int64_t k, int64_t r, int64_t s, int64_t stride,
                       int64_t pad);
  std::string key() const;
};

struct PoolGeom {
  int64_t n = 0, c = 0, h = 0, w = 0;
  int64_t kernel = 2, stride = 2, pad = 0;
  int64_t oh = 0, ow = 0;
  static PoolGeom make(const Shape& x, int64_t kernel, int64_t stride, int64_t pad);
};

enum class Act { kIdentity, kRelu, kElu, kTanh, kSigmoid };

enum class Accumulate { kNo, kYes };  // write (beta 0) or add into an existing gradient

struct BatchNormOpts {
  float momentum = 0.1f;  // PyTorch convention: run = (1-m) run + m batch
  float eps = 1e-5f;
};

struct SgdOpts {
  float lr = 0.1f, momentum = 0.f, dampening = 0.f, weightDecay = 0.f;
  bool nesterov = false;
};
struct AdamOpts {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weightDecay = 0.f;
  bool amsgrad = false;
  int64_t step = 1;  // 1-based step count after increment
};
// LARS: LARC's clipped trust ratio, then SGD with momentum. sgd.weightDecay is applied inside the
// clipping (the SGD step itself then runs without decay).
struct LarsOpts {
  SgdOpts sgd;
  float trust = 0.02f, eps = 1e-8f;
};

// Additive coupling of a channel pair (nn/Reversible.h). For x = (x1, x2) [n, 2C, ...] and
// f [n, C, ...]:  kForward: out = (x2 + f, x1)   kInverse: out = (x2, x1 - f).
enum class Coupling { kForward, kInverse };

// What dtpFirstTarget measures on the logits it turns into a target.
struct LogitStats {
  double ce = 0;         // mean cross-entropy over the batch (as softmaxXentForward)
  int64_t correct = 0;   // rows whose argmax is the label (as countCorrect)
};

class Backend : public TensorCopier {
 public:
  ~Backend() override = default;
  virtual std::string name() const = 0;

  // Memory.
  virtual Tensor empty(const Shape& s) = 0;
  virtual Tensor zeros(const Shape& s) = 0;
  virtual void fill(Tensor& t, float v) = 0;
  // device(), copy(), toHost() and nativeStream() come from TensorCopier.
  Tensor fromHost(const Tensor& host);
  virtual void synchronize() {}

  // Linear algebra on row-major 2-D views: C = alpha op(A) op(B) + beta C.
  virtual void gemm(const Tensor& a, const Tensor& b, Tensor& c, GemmOpts o) = 0;
  // y[n, f] += bias[f] (features = dim 1; spatial dims follow).
  virtual void addBias(Tensor& y, const Tensor& bias) = 0;
  // db[f] (+)= sum over n and spatial of dy.
  virtual void biasGrad(const Tensor& dy, Tensor& db, Accumulate acc) = 0;

  // Convolution (bias optional: pass an undefined tensor).
  virtual void convForward(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y,
                           const ConvGeom& g) = 0;
  virtual void convBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const ConvGeom& g,
                                Accumulate acc) = 0;
  virtual void convBackwardFilter(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db,
                                  const ConvGeom& g, Accumulate acc) = 0;
  // Both gradients of one convolution from one dy (either output may be null): lets a backend
  // share work between them (the CPU backend reorders dy once). Default: the two calls above.
  virtual void convBackward(const Tensor& x, const Tensor& dy, const Tensor& w, Tensor* dw,
                            Accumulate accW, Tensor* dx, const ConvGeom& g) {
    if (dw) convBackwardFilter(x, dy, *dw, nullptr, g, accW);
    if (dx) convBackwardData(dy, w, *dx, g, Accumulate::kNo);
  }

  // Elementwise activations; backward may read x (input) or y (output) as the function needs.
  virtual void actForward(Act a, float alpha, const Tensor& x, Tensor& y) = 0;
  virtual void actBackward(Act a, float alpha, const Tensor& x, const Tensor& y, const Tensor& dy,
                           Tensor& dx) = 0;

  // Pooling. idx holds, per output, the flat h*w index of the max inside its (n, c) plane.
  virtual void maxPoolForward(const Tensor& x, Tensor& y, Tensor& idx, const PoolGeom& g) = 0;
  virtual void maxPoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx,
                               const PoolGeom& g) = 0;
  // Unpool: y (the pool's input shape) = 0 except y[idx] = x. Its backward gathers dy at idx.
  virtual void maxUnpoolForward(const Tensor& x, const Tensor& idx, Tensor& y,
                                const PoolGeom& g) = 0;
  virtual void maxUnpoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx,
                                 const PoolGeom& g) = 0;
  // Average pooling, padding counted in the divisor (PyTorch count_include_pad=True).
  virtual void avgPoolForward(const Tensor& x, Tensor& y, const PoolGeom& g) = 0;
  virtual void avgPoolBackward(const Tensor& dy, Tensor& dx, const PoolGeom& g) = 0;

  // Batch norm over dim 1 of [n, c] or [n, c, h, w]. Training mode saves mean and 1/std.
  virtual void batchNormForwardTrain(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                     Tensor& y, Tensor& saveMean, Tensor& saveInvStd,
                                     Tensor& runMean, Tensor& runVar, BatchNormOpts o) = 0;
  virtual void batchNormForwardEval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    Tensor& y, const Tensor& runMean, const Tensor& runVar,
                                    BatchNormOpts o) = 0;
  virtual void batchNormBackward(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                                 const Tensor& saveMean, const Tensor& saveInvStd, Tensor& dx,
                                 Tensor& dgamma, Tensor& dbeta, Accumulate acc) = 0;

  // Dropout: mask = (u >= p) / (1 - p), y = x * mask. The mask is drawn on the host RNG so the
  // result is the same on every backend for a given seed.
  virtual void dropoutForward(const Tensor& x, Tensor& y, Tensor& mask, float p, Rng& rng) = 0;
  virtual void mul(const Tensor& a, const Tensor& b, Tensor& out) = 0;

  // Softmax cross-entropy, mean over the batch. labels: int32 [n]. Writes probabilities,
  // returns the mean loss. Backward: dlogits = scale * (probs - onehot(labels)).
  virtual float softmaxXentForward(const Tensor& logits, const Tensor& labels, Tensor& probs) = 0;
  virtual void softmaxXentBackward(const Tensor& probs, const Tensor& labels, Tensor& dlogits,
                                   float scale) = 0;
  // Number of rows whose argmax equals the label.
  virtual int64_t countCorrect(const Tensor& logits, const Tensor& labels) = 0;

  // Channel halves (reversible networks): x [n, ca + cb, ...] <-> a [n, ca, ...], b [n, cb, ...].
  // splitChannels leaves an undefined output alone (pass one to extract only the other half).
  virtual void splitChannels(const Tensor& x, Tensor& a, Tensor& b) = 0;
  virtual void concatChannels(const Tensor& a, const Tensor& b, Tensor& x) = 0;
  // Adaptive average pooling of [n, c, h, w] to [n, c, oh, ow] (PyTorch AdaptiveAvgPool2d bins:
  // rows floor(i h / oh) .. ceil((i + 1) h / oh)).
  virtual void adaptiveAvgPoolForward(const Tensor& x, Tensor& y) = 0;
  virtual void adaptiveAvgPoolBackward(const Tensor& dy, Tensor& dx) = 0;

  // Elementwise helpers.
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  virtual void axpy(float alpha, const Tensor& x, Tensor& y) = 0;  // y += alpha x
  virtual void scale(Tensor& x, float alpha) = 0;
  virtual double sumSquares(const Tensor& x) = 0;
  virtual double sum(const Tensor& x) = 0;

  // Fused optimizer updates (PyTorch semantics, see optim/).
  virtual void sgdUpdate(Tensor& param, const Tensor& grad, Tensor& buf, const SgdOpts& o,
                         bool firstStep) = 0;
  virtual void adamUpdate(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax,
                          const AdamOpts& o) = 0;
  // LARS (optim/Optimizer.h): when |W| and |g| are both non-zero,
  //   g <- (g + wd W) min(trust |W| / (|g| + wd |W| + eps) / lr, 1)   (written back into grad),
  // else g is left as it is; then an SGD step with momentum and no weight decay. The norms are
  // taken in double; no host synchronisation is needed on a device.
  virtual void larsUpdate(Tensor& param, Tensor& grad, Tensor& buf, const LarsOpts& o,
                          bool firstStep) = 0;
  // SpecTrain weight prediction (optim/Optimizer.h): out = w - step (momentum buf + lastD), an
  // undefined buf or lastD counting as zero.
  virtual void predictWeights(const Tensor& w, const Tensor& buf, const Tensor& lastD,
                              float momentum, float step, Tensor& out) = 0;

  // Reversible coupling (see Coupling): the forward (x = the input, f = F(x1)), its backward
  // (x = dy, f = F's input gradient from dy1: dx = (dy2 + f, dy1)) and its inverse (x = y,
  // f = F(y2)). out must not alias x.
  virtual void coupling(Coupling dir, const Tensor& x, const Tensor& f, Tensor& out) = 0;

  // DTP losses (dtp/Dtp.h). Every loss sums over the features of a sample and averages over the
  // batch (dim 0, size B), in double, in an order that does not depend on the thread count.
  // L-DRL: returns mean_b[-2 sum(dx * dTilde) + sum(dHat^2)] with dTilde = r~ - r, dHat = r^ - r.
  // When upTilde / upHat are given, also writes the upstream gradients of gradScale * loss:
  // upTilde = -2 gradScale / B dx, upHat = 2 gradScale / B dHat (upHat may be dHat itself).
  virtual double dtpDrlLoss(const Tensor& dx, const Tensor& dTilde, const Tensor& dHat,
                            float gradScale, Tensor* upTilde, Tensor* upHat) = 0;
  // First target t = z - beta (softmax(z) - onehot(labels)) of logits z [B, k], plus the batch's
  // cross-entropy and correct count of z. t must not alias z.
  virtual LogitStats dtpFirstTarget(const Tensor& z, const Tensor& labels, float beta,
                                    Tensor& t) = 0;
  // Difference target t = (h + gt) - gh, i.e. h_{i-1} + G(t_i) - G(h_i).
  virtual void dtpDifferenceTarget(const Tensor& h, const Tensor& gt, const Tensor& gh,
                                   Tensor& t) = 0;
  // Layer-local loss mean_b 1/2 |h - t|^2; writes its gradient grad = (h - t) / B.
  virtual double dtpLocalLoss(const Tensor& h, const Tensor& t, Tensor& grad) = 0;

  // Threads used by this backend's host-side compute.
  virtual void setThreads(int n) { (void)n; }
};

// CPU convolution algorithm: oneDNN's direct kernels where the build has oneDNN and it has an
// optimized kernel for the shape, else batched im2col + GEMM (kAuto); or im2col everywhere.
enum class CpuConv { kAuto, kIm2col };

// The CPU backend, created once per process.
std::unique_ptr<Backend> makeCpuBackend(int threads, CpuConv conv = CpuConv::kAuto);
// The CPU backend behind a device tag (runtime.device = cpu-staged, for tests): its tensors are
// host memory that the trainers must stage like device memory (see StagingTestBackend.cpp).
std::unique_ptr<Backend> makeStagingTestBackend(int threads, CpuConv conv = CpuConv::kAuto);

struct CudaOptions {
  // TF32 tensor-core math for GEMM and convolutions: faster on Ampere and later, ~1e-3 relative
  // error. Off by default so the CUDA backend stays comparable with the CPU reference.
  bool allowTf32 = false;
  size_t maxWorkspaceBytes = size_t(1) << 30;  // largest cuDNN workspace an algorithm may use
  // Page-locked host memory held for host <-> device copies (PinnedStaging); a larger single
  // transfer goes from pageable memory instead.
  size_t maxPinnedBytes = size_t(256) << 20;
};
// Usable CUDA devices: 0 when the build has no CUDA backend, or there is no driver or no GPU.
int cudaDeviceCount();
// The CUDA backend on `device`; DeviceError when the build has no CUDA backend or the device
// cannot be used. Declared here (CUDA-free) so the factory builds with and without CUDA.
std::unique_ptr<Backend> makeCudaBackend(int device, CudaOptions o = {});

}  // namespace sw
