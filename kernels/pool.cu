// Pooling kernels (see pool.cuh). One thread per output (forward) or per input (backward).
#include "kernels/common.cuh"
#include "kernels/pool.cuh"

namespace sw::kernels {
namespace {

// Output rows whose window [o*stride - pad, o*stride - pad + kernel) contains input row `i`.
__device__ inline void windowRange(int64_t i, int64_t kernel, int64_t stride, int64_t pad,
                                   int64_t outSize, int64_t& lo, int64_t& hi) {
  const int64_t a = i + pad - kernel + 1;  // o*stride >= a
  lo = a <= 0 ? 0 : (a + stride - 1) / stride;
  hi = (i + pad) / stride + 1;  // o*stride <= i + pad
  if (hi > outSize) hi = outSize;
}

__global__ void max_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                        int32_t* __restrict__ idx, PoolDims d) {
  const int64_t ohw = d.oh * d.ow;
  SW_GRID_LOOP(o, d.planes * ohw) {
    const int64_t p = o / ohw, oy = (o % ohw) / d.ow, ox = o % d.ow;
    const float* src = x + p * d.h * d.w;
    const int64_t y0 = oy * d.stride - d.pad, x0 = ox * d.stride - d.pad;
    float best = -INFINITY;
    int32_t bi = -1;
    for (int64_t ky = 0; ky < d.kernel; ++ky) {
      const int64_t iy = y0 + ky;
      if (iy < 0 || iy >= d.h) continue;
      for (int64_t kx = 0; kx < d.kernel; ++kx) {
        const int64_t ix = x0 + kx;
        if (ix < 0 || ix >= d.w) continue;
        const float v = src[iy * d.w + ix];
        if (bi < 0 || v > best || (isnan(v) && !isnan(best))) {
          best = v;
          bi = static_cast<int32_t>(iy * d.w + ix);
        }
      }
    }
    y[o] = best;
    idx[o] = bi;
  }
}

__global__ void max_pool_backward_kernel(const float* __restrict__ dy,
                                         const int32_t* __restrict__ idx, float* __restrict__ dx,
                                         PoolDims d) {
  const int64_t hw = d.h * d.w, ohw = d.oh * d.ow;
  SW_GRID_LOOP(q, d.planes * hw) {
    const int64_t p = q / hw, iy = (q % hw) / d.w, ix = q % d.w;
    const int32_t self = static_cast<int32_t>(q % hw);
    int64_t ylo, yhi, xlo, xhi;
    windowRange(iy, d.kernel, d.stride, d.pad, d.oh, ylo, yhi);
    windowRange(ix, d.kernel, d.stride, d.pad, d.ow, xlo, xhi);
    float s = 0.f;
    for (int64_t oy = ylo; oy < yhi; ++oy)
      for (int64_t ox = xlo; ox < xhi; ++ox) {
        const int64_t o = p * ohw + oy * d.ow + ox;
        if (idx[o] == self) s += dy[o];
      }
    dx[q] = s;
  }
}

__global__ void max_unpool_backward_kernel(const float* __restrict__ dy,
                                           const int32_t* __restrict__ idx,
                                           float* __restrict__ dx, PoolDims d) {
  const int64_t hw = d.h * d.w, ohw = d.oh * d.ow;
  SW_GRID_LOOP(o, d.planes * ohw) dx[o] = dy[(o / ohw) * hw + idx[o]];
}

__global__ void avg_pool_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                        PoolDims d) {
  const int64_t ohw = d.oh * d.ow;
  const float inv = 1.f / static_cast<float>(d.kernel * d.kernel);
  SW_GRID_LOOP(o, d.planes * ohw) {
    const int64_t p = o / ohw, oy = (o % ohw) / d.ow, ox = o % d.ow;
    const float* src = x + p * d.h * d.w;
    float s = 0.f;
    for (int64_t ky = 0; ky < d.kernel; ++ky) {
      const int64_t iy = oy * d.stride - d.pad + ky;
      if (iy < 0 || iy >= d.h) continue;
      for (int64_t kx = 0; kx < d.kernel; ++kx) {
        const int64_t ix = ox * d.stride - d.pad + kx;
        if (ix >= 0 && ix < d.w) s += src[iy * d.w + ix];
      }
    }
    y[o] = s * inv;
  }
}

__global__ void avg_pool_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx,
                                         PoolDims d) {
  const int64_t hw = d.h * d.w, ohw = d.oh * d.ow;
  const float inv = 1.f / static_cast<float>(d.kernel * d.kernel);
  SW_GRID_LOOP(q, d.planes * hw) {
    const int64_t p = q / hw, iy = (q % hw) / d.w, ix = q % d.w;
    int64_t ylo, yhi, xlo, xhi;
    windowRange(iy, d.kernel, d.stride, d.pad, d.oh, ylo, yhi);
    windowRange(ix, d.kernel, d.stride, d.pad, d.ow, xlo, xhi);
    float s = 0.f;
    for (int64_t oy = ylo; oy < yhi; ++oy)
      for (int64_t ox = xlo; ox < xhi; ++ox) s += dy[p * ohw + oy * d.ow + ox] * inv;
    dx[q] = s;
  }
}

// PyTorch AdaptiveAvgPool2d bins: [floor(i in / out), ceil((i + 1) in / out)).
__device__ inline int64_t binBegin(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
__device__ inline int64_t binEnd(int64_t i, int64_t in, int64_t out) {
  return ((i + 1) * in + out - 1) / out;
}

__global__ void adaptive_forward_kernel(const float* __restrict__ x, float* __restrict__ y,
                                        PoolDims d) {
  const int64_t ohw = d.oh * d.ow;
  SW_GRID_LOOP(o, d.planes * ohw) {
    const int64_t p = o / ohw, i = (o % ohw) / d.ow, j = o % d.ow;
    const int64_t r0 = binBegin(i, d.h, d.oh), r1 = binEnd(i, d.h, d.oh);
    const int64_t c0 = binBegin(j, d.w, d.ow), c1 = binEnd(j, d.w, d.ow);
    float s = 0.f;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) s += x[(p * d.h + r) * d.w + c];
    y[o] = s / float((r1 - r0) * (c1 - c0));
  }
}

// Bins containing input row r: a contiguous run around floor(r out / in).
__device__ inline void binRange(int64_t r, int64_t in, int64_t out, int64_t& lo, int64_t& hi) {
  const int64_t mid = (r * out) / in;
  lo = mid;
  while (lo > 0 && binEnd(lo - 1, in, out) > r) --lo;
  hi = mid + 1;
  while (hi < out && binBegin(hi, in, out) <= r) ++hi;
}

__global__ void adaptive_backward_kernel(const float* __restrict__ dy, float* __restrict__ dx,
                                         PoolDims d) {
  const int64_t hw = d.h * d.w, ohw = d.oh * d.ow;
  SW_GRID_LOOP(q, d.planes * hw) {
    const int64_t p = q / hw, r = (q % hw) / d.w, c = q % d.w;
    int64_t ilo, ihi, jlo, jhi;
    binRange(r, d.h, d.oh, ilo, ihi);
    binRange(c, d.w, d.ow, jlo, jhi);
    float s = 0.f;
    for (int64_t i = ilo; i < ihi; ++i)
      for (int64_t j = jlo; j < jhi; ++j) {
        const int64_t cnt = (binEnd(i, d.h, d.oh) - binBegin(i, d.h, d.oh)) *
                            (binEnd(j, d.w, d.ow) - binBegin(j, d.w, d.ow));
        s += dy[p * ohw + i * d.ow + j] / float(cnt);
      }
    dx[q] = s;
  }
}

template <class K, class... Args>
void launch(K kernel, int64_t n, cudaStream_t s, Args... args) {
  if (n == 0) return;
  kernel<<<gridFor(n), 256, 0, s>>>(args...);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace

void maxPoolForward(const float* x, float* y, int32_t* idx, const PoolDims& d, cudaStream_t s) {
  launch(max_pool_forward_kernel, d.planes * d.oh * d.ow, s, x, y, idx, d);
}
void maxPoolBackward(const float* dy, const int32_t* idx, float* dx, const PoolDims& d,
                     cudaStream_t s) {
  launch(max_pool_backward_kernel, d.planes * d.h * d.w, s, dy, idx, dx, d);
}
void maxUnpoolBackward(const float* dy, const int32_t* idx, float* dx, const PoolDims& d,
                       cudaStream_t s) {
  launch(max_unpool_backward_kernel, d.planes * d.oh * d.ow, s, dy, idx, dx, d);
}
void avgPoolForward(const float* x, float* y, const PoolDims& d, cudaStream_t s) {
  launch(avg_pool_forward_kernel, d.planes * d.oh * d.ow, s, x, y, d);
}
void avgPoolBackward(const float* dy, float* dx, const PoolDims& d, cudaStream_t s) {
  launch(avg_pool_backward_kernel, d.planes * d.h * d.w, s, dy, dx, d);
}
void adaptiveAvgPoolForward(const float* x, float* y, const PoolDims& d, cudaStream_t s) {
  launch(adaptive_forward_kernel, d.planes * d.oh * d.ow, s, x, y, d);
}
void adaptiveAvgPoolBackward(const float* dy, float* dx, const PoolDims& d, cudaStream_t s) {
  launch(adaptive_backward_kernel, d.planes * d.h * d.w, s, dy, dx, d);
}

}  // namespace sw::kernels
