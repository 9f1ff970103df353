// CpuBackend's pooling (max, average, adaptive average, max-unpool for DTP) and batch norm.
// Each OpenMP thread owns disjoint output planes or channels (no atomics), as in CpuBackend.cpp.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend/Dims.h"
#include "backend/cpu/ChannelSum.h"
#include "backend/cpu/CpuBackend.h"
#include "core/Error.h"

namespace sw {

using detail::channelSum;
using detail::identity;

void CpuBackend::maxPoolForward(const Tensor& x, Tensor& y, Tensor& idx, const PoolGeom& g) {
  const int64_t planes = g.n * g.c, hw = g.h * g.w, ohw = g.oh * g.ow;
  const float* xp = x.data();
  float* yp = y.data();
  int32_t* ip = idx.data<int32_t>();
  if (g.kernel == 2 && g.stride == 2 && g.pad == 0) {
    // The common 2x2/2 window without padding: branch-light, first maximum wins like the
    // general path (strict >), NaN propagates.
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
      const float* src = xp + p * hw;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const float* r0 = src + 2 * oy * g.w;
        const float* r1 = r0 + g.w;
        float* yrow = yp + p * ohw + oy * g.ow;
        int32_t* irow = ip + p * ohw + oy * g.ow;
        const int32_t base = static_cast<int32_t>(2 * oy * g.w);
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const float c[4] = {r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]};
          const int32_t off[4] = {0, 1, static_cast<int32_t>(g.w), static_cast<int32_t>(g.w) + 1};
          int k = 0;
          for (int j = 1; j < 4; ++j)
            if (c[j] > c[k] || (std::isnan(c[j]) && !std::isnan(c[k]))) k = j;
          yrow[ox] = c[k];
          irow[ox] = base + static_cast<int32_t>(2 * ox) + off[k];
        }
      }
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = xp + p * hw;
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t y0 = oy * g.stride - g.pad, x0 = ox * g.stride - g.pad;
        float best = -INFINITY;
        int32_t bi = -1;
        for (int64_t ky = 0; ky < g.kernel; ++ky) {
          const int64_t iy = y0 + ky;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t kx = 0; kx < g.kernel; ++kx) {
            const int64_t ix = x0 + kx;
            if (ix < 0 || ix >= g.w) continue;
            const float v = src[iy * g.w + ix];
            // NaN propagates (as in PyTorch): a NaN always wins.
            if (v > best || bi < 0 || std::isnan(v)) {
              best = v;
              bi = static_cast<int32_t>(iy * g.w + ix);
            }
          }
        }
        yp[p * ohw + oy * g.ow + ox] = best;
        ip[p * ohw + oy * g.ow + ox] = bi;
      }
  }
}

void CpuBackend::maxPoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx,
                                 const PoolGeom& g) {
  const int64_t planes = g.n * g.c, hw = g.h * g.w, ohw = g.oh * g.ow;
  const float* dyp = dy.data();
  const int32_t* ip = idx.data<int32_t>();
  float* dxp = dx.data();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* d = dxp + p * hw;
    std::memset(d, 0, sizeof(float) * hw);
    for (int64_t j = 0; j < ohw; ++j) d[ip[p * ohw + j]] += dyp[p * ohw + j];
  }
}

void CpuBackend::maxUnpoolForward(const Tensor& x, const Tensor& idx, Tensor& y,
                                  const PoolGeom& g) {
  // Same gather/scatter as the pool's backward: y is zero except at the recorded argmax.
  maxPoolBackward(x, idx, y, g);
}

void CpuBackend::maxUnpoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx,
                                   const PoolGeom& g) {
  const int64_t planes = g.n * g.c, hw = g.h * g.w, ohw = g.oh * g.ow;
  const float* dyp = dy.data();
  const int32_t* ip = idx.data<int32_t>();
  float* dxp = dx.data();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t j = 0; j < ohw; ++j) dxp[p * ohw + j] = dyp[p * hw + ip[p * ohw + j]];
}

void CpuBackend::avgPoolForward(const Tensor& x, Tensor& y, const PoolGeom& g) {
  const int64_t planes = g.n * g.c, hw = g.h * g.w, ohw = g.oh * g.ow;
  const float inv = 1.f / static_cast<float>(g.kernel * g.kernel);
  const float* xp = x.data();
  float* yp = y.data();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float* src = xp + p * hw;
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        float s = 0.f;
        for (int64_t ky = 0; ky < g.kernel; ++ky) {
          const int64_t iy = oy * g.stride - g.pad + ky;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t kx = 0; kx < g.kernel; ++kx) {
            const int64_t ix = ox * g.stride - g.pad + kx;
            if (ix >= 0 && ix < g.w) s += src[iy * g.w + ix];
          }
        }
        yp[p * ohw + oy * g.ow + ox] = s * inv;
      }
  }
}

void CpuBackend::avgPoolBackward(const Tensor& dy, Tensor& dx, const PoolGeom& g) {
  const int64_t planes = g.n * g.c, hw = g.h * g.w, ohw = g.oh * g.ow;
  const float inv = 1.f / static_cast<float>(g.kernel * g.kernel);
  const float* dyp = dy.data();
  float* dxp = dx.data();
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* d = dxp + p * hw;
    std::memset(d, 0, sizeof(float) * hw);
    for (int64_t oy = 0; oy < g.oh; ++oy)
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const float v = dyp[p * ohw + oy * g.ow + ox] * inv;
        for (int64_t ky = 0; ky < g.kernel; ++ky) {
          const int64_t iy = oy * g.stride - g.pad + ky;
          if (iy < 0 || iy >= g.h) continue;
          for (int64_t kx = 0; kx < g.kernel; ++kx) {
            const int64_t ix = ox * g.stride - g.pad + kx;
            if (ix >= 0 && ix < g.w) d[iy * g.w + ix] += v;
          }
        }
      }
  }
}

void CpuBackend::batchNormForwardTrain(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       Tensor& y, Tensor& saveMean, Tensor& saveInvStd,
                                       Tensor& runMean, Tensor& runVar, BatchNormOpts o) {
  const int64_t n = x.dim(0), c = x.dim(1), sp = spatial(x), m = n * sp;
  const float* xp = x.data();
  float* yp = y.data();
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < c; ++j) {
    // Two passes in double: the mean first, then the centred sum of squares (no cancellation).
    const double mean = channelSum(xp, n, c, j, sp, identity) / m;
    const float mf = static_cast<float>(mean);
    const double ss = channelSum(xp, n, c, j, sp, [mf](float v) { return (v - mf) * (v - mf); });
    const double var = ss / m;
    const float inv = static_cast<float>(1.0 / std::sqrt(var + o.eps));
    saveMean.data()[j] = static_cast<float>(mean);
    saveInvStd.data()[j] = inv;
    const double unbiased = m > 1 ? ss / (m - 1) : var;
    runMean.data()[j] = (1.f - o.momentum) * runMean.data()[j] + o.momentum * static_cast<float>(mean);
    runVar.data()[j] = (1.f - o.momentum) * runVar.data()[j] + o.momentum * static_cast<float>(unbiased);
    const float a = gamma.data()[j] * inv, b = beta.data()[j] - static_cast<float>(mean) * a;
    for (int64_t i = 0; i < n; ++i) {
      const float* q = xp + (i * c + j) * sp;
      float* r = yp + (i * c + j) * sp;
#pragma omp simd
      for (int64_t k = 0; k < sp; ++k) r[k] = q[k] * a + b;
    }
  }
}

void CpuBackend::batchNormForwardEval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                      Tensor& y, const Tensor& runMean, const Tensor& runVar,
                                      BatchNormOpts o) {
  const int64_t n = x.dim(0), c = x.dim(1), sp = spatial(x);
  const float* xp = x.data();
  float* yp = y.data();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) {
      const float inv = 1.f / std::sqrt(runVar.data()[j] + o.eps);
      const float a = gamma.data()[j] * inv, b = beta.data()[j] - runMean.data()[j] * a;
      const float* q = xp + (i * c + j) * sp;
      float* r = yp + (i * c + j) * sp;
#pragma omp simd
      for (int64_t k = 0; k < sp; ++k) r[k] = q[k] * a + b;
    }
}

void CpuBackend::batchNormBackward(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                                   const Tensor& saveMean, const Tensor& saveInvStd, Tensor& dx,
                                   Tensor& dgamma, Tensor& dbeta, Accumulate acc) {
  const int64_t n = x.dim(0), c = x.dim(1), sp = spatial(x), m = n * sp;
  const float* xp = x.data();
  const float* dyp = dy.data();
  float* dxp = dx.defined() ? dx.data() : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < c; ++j) {
    const float mean = saveMean.data()[j], inv = saveInvStd.data()[j];
    double sdy = 0, sdyx = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float* q = xp + (i * c + j) * sp;
      const float* d = dyp + (i * c + j) * sp;
      float t1 = 0, t2 = 0;
#pragma omp simd reduction(+ : t1, t2)
      for (int64_t k = 0; k < sp; ++k) {
        t1 += d[k];
        t2 += d[k] * (q[k] - mean);
      }
      sdy += t1;
      sdyx += t2;
    }
    const float dg = static_cast<float>(sdyx) * inv, dbv = static_cast<float>(sdy);
    if (acc == Accumulate::kYes) {
      dgamma.data()[j] += dg;
      dbeta.data()[j] += dbv;
    } else {
      dgamma.data()[j] = dg;
      dbeta.data()[j] = dbv;
    }
    if (!dxp) continue;
    // dx = gamma*inv/m * (m*dy - sum(dy) - xhat*sum(dy*xhat))
    const float k1 = gamma.data()[j] * inv;
    const float meanDy = static_cast<float>(sdy / m);
    const float k2 = static_cast<float>(sdyx / m) * inv * inv;
    for (int64_t i = 0; i < n; ++i) {
      const float* q = xp + (i * c + j) * sp;
      const float* d = dyp + (i * c + j) * sp;
      float* r = dxp + (i * c + j) * sp;
#pragma omp simd
      for (int64_t k = 0; k < sp; ++k) r[k] = k1 * (d[k] - meanDy - (q[k] - mean) * k2);
    }
  }
}

namespace {
inline int64_t binBegin(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
inline int64_t binEnd(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }
}  // namespace

void CpuBackend::adaptiveAvgPoolForward(const Tensor& x, Tensor& y) {
  const int64_t nc = x.dim(0) * x.dim(1), h = x.dim(2), w = x.dim(3), oh = y.dim(2), ow = y.dim(3);
  const float* xp = x.data();
  float* yp = y.data();
#pragma omp parallel for if (nc * oh * ow > 16384)
  for (int64_t p = 0; p < nc; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t r0 = binBegin(i, h, oh), r1 = binEnd(i, h, oh), c0 = binBegin(j, w, ow), c1 = binEnd(j, w, ow);
        float s = 0.f;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) s += xp[(p * h + r) * w + c];
        yp[(p * oh + i) * ow + j] = s / float((r1 - r0) * (c1 - c0));
      }
}

void CpuBackend::adaptiveAvgPoolBackward(const Tensor& dy, Tensor& dx) {
  const int64_t nc = dx.dim(0) * dx.dim(1), h = dx.dim(2), w = dx.dim(3), oh = dy.dim(2), ow = dy.dim(3);
  const float* gp = dy.data();
  float* dp = dx.data();
#pragma omp parallel for if (nc * h * w > 16384)
  for (int64_t p = 0; p < nc; ++p) {
    float* d = dp + p * h * w;
    std::fill(d, d + h * w, 0.f);
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t r0 = binBegin(i, h, oh), r1 = binEnd(i, h, oh), c0 = binBegin(j, w, ow), c1 = binEnd(j, w, ow);
        const float g = gp[(p * oh + i) * ow + j] / float((r1 - r0) * (c1 - c0));
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) d[r * w + c] += g;
      }
  }
}

}  // namespace sw
