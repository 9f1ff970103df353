// DnnlConv: 2-D convolution (forward, backward data, backward weights) on oneDNN's direct JIT
// kernels. Our tensors stay NCHW / OIHW at the Backend interface; each call reorders into the
// blocked layouts the kernel prefers (nChw16c / OIhw16i16o on AVX-512) and back. Measured on
// the ResNet-18 CIFAR shapes (batch 128, 2 threads, AVX-512): the blocked direct kernels plus
// the reorders take ~0.55x the time of batched im2col + GEMM, see README "CPU speed".
//
// Primitives are built once per geometry and cached; scratch (blocked copies, oneDNN's own
// scratchpad) comes from the caller's buffers so that the cache holds no activation-sized memory.
// backward() computes both gradients from one reordered dy.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

#include "backend/Backend.h"

namespace sw {

class DnnlConv {
 public:
  // scratch(idx, floats) returns a host buffer of at least `floats` floats (64-byte aligned) that
  // stays valid until the next call with the same idx.
  using Scratch = std::function<float*(size_t idx, size_t floats)>;
  explicit DnnlConv(Scratch scratch);
  ~DnnlConv();
  DnnlConv(const DnnlConv&) = delete;
  DnnlConv& operator=(const DnnlConv&) = delete;

  // False when oneDNN has no optimized (non-reference, non-GEMM) kernel for g: the caller then
  // uses its own path.
  bool supports(const ConvGeom& g);

  void forward(const float* x, const float* w, const float* bias, float* y, const ConvGeom& g);
  // dw (+)= dW (accW) and dx (+)= dX (accX); either output may be null.
  void backward(const float* x, const float* dy, const float* w, float* dw, Accumulate accW,
                float* dx, Accumulate accX, const ConvGeom& g);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sw
