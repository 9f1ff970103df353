// Backend helpers shared by all implementations.
#include "backend/Backend.h"

#include "backend/Dims.h"

#include "core/Error.h"

namespace sw {

ConvGeom ConvGeom::make(const Shape& x, int64_t k, int64_t r, int64_t s, int64_t stride,
                        int64_t pad) {
  if (x.rank() != 4) throw ShapeError("conv input must be NCHW, got " + x.str());
  ConvGeom g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.k = k, g.r = r, g.s = s, g.stride = stride, g.pad = pad;
  g.oh = (g.h + 2 * pad - r) / stride + 1;
  g.ow = (g.w + 2 * pad - s) / stride + 1;
  if (g.oh <= 0 || g.ow <= 0)
    throw ShapeError("conv output would be empty for input " + x.str() + " kernel " +
                     std::to_string(r));
  return g;
}

std::string ConvGeom::key() const {
  return std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" +
         std::to_string(w) + "_k" + std::to_string(k) + "_" + std::to_string(r) + "x" +
         std::to_string(s) + "_s" + std::to_string(stride) + "_p" + std::to_string(pad);
}

PoolGeom PoolGeom::make(const Shape& x, int64_t kernel, int64_t stride, int64_t pad) {
  if (x.rank() != 4) throw ShapeError("pool input must be NCHW, got " + x.str());
  // PyTorch's rule, for every backend: with pad > kernel / 2 a window can lie wholly in the
  // padding, and max-unpooling's backward would read outside the input.
  if (kernel < 1 || stride < 1 || pad < 0 || 2 * pad > kernel)
    throw ShapeError("pool geometry kernel " + std::to_string(kernel) + ", stride " + std::to_string(stride) +
                     ", pad " + std::to_string(pad) + ": needs kernel >= 1, stride >= 1 and 0 <= pad <= kernel / 2");
  PoolGeom g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.kernel = kernel, g.stride = stride, g.pad = pad;
  g.oh = (g.h + 2 * pad - kernel) / stride + 1;
  g.ow = (g.w + 2 * pad - kernel) / stride + 1;
  if (g.oh <= 0 || g.ow <= 0) throw ShapeError("pool output would be empty for input " + x.str());
  return g;
}

GemmDims gemmDims(const Tensor& a, const Tensor& b, const Tensor& c, const GemmOpts& o) {
  const int64_t ar = rows2d(a), ac = cols2d(a), br = rows2d(b), bc = cols2d(b);
  const int64_t m = o.transA ? ac : ar, k = o.transA ? ar : ac;
  const int64_t kb = o.transB ? bc : br, n = o.transB ? br : bc;
  if (k != kb || rows2d(c) != m || cols2d(c) != n)
    throw ShapeError("gemm shapes " + a.shape().str() + (o.transA ? "^T" : "") + " x " +
                     b.shape().str() + (o.transB ? "^T" : "") + " -> " + c.shape().str());
  return {m, n, k, ac, bc};
}

ChannelHalves channelHalves(const Tensor& x, const Tensor& a, const Tensor& b, const char* op) {
  const auto fits = [&](const Tensor& h) {
    return !h.defined() || (h.rank() == x.rank() && h.dim(0) == x.dim(0) && h.dim(1) <= x.dim(1) &&
                            h.numel() == h.dim(1) * (x.numel() / x.dim(1)));
  };
  const bool ok = x.rank() >= 2 && x.dim(1) > 0 && (a.defined() || b.defined()) && fits(a) && fits(b) &&
                  (!a.defined() || !b.defined() || a.dim(1) + b.dim(1) == x.dim(1));
  if (!ok)
    throw ShapeError(std::string(op) + ": " + x.shape().str() + " and halves " +
                     (a.defined() ? a.shape().str() : "-") + " + " +
                     (b.defined() ? b.shape().str() : "-"));
  const int64_t ca = a.defined() ? a.dim(1) : x.dim(1) - b.dim(1);
  return {ca, x.dim(1) - ca};
}

void checkSameCount(const Tensor& a, const Tensor& b, const char* op) {
  if (b.defined() && a.numel() != b.numel())
    throw ShapeError(std::string(op) + ": " + a.shape().str() + " vs " + b.shape().str());
}

int64_t couplingHalf(const Tensor& x, const Tensor& f, const Tensor& out) {
  if (x.rank() < 2 || x.dim(1) % 2 != 0 || f.numel() * 2 != x.numel() || out.numel() != x.numel())
    throw ShapeError("coupling: pair " + x.shape().str() + ", F " + f.shape().str() + ", out " +
                     out.shape().str());
  return x.dim(0) ? x.numel() / x.dim(0) / 2 : 0;
}

Tensor Backend::fromHost(const Tensor& host) {
  if (device().isCpu()) return host;
  Tensor d = empty(host.shape());
  copy(host, d);
  return d;
}

#ifndef SW_CUDA_BACKEND
// Builds without the CUDA backend (no nvcc, or SW_WITH_CUDNN=OFF): no devices.
int cudaDeviceCount() { return 0; }

std::unique_ptr<Backend> makeCudaBackend(int, CudaOptions) {
  throw DeviceError("this build of stagewise has no CUDA backend (configure with nvcc and cuDNN)");
}
#endif

}  // namespace sw
