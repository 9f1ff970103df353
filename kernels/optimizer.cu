// Fused optimizer kernels: one pass over param/grad/state per tensor, bias corrections computed
// once on the host in double (as the CPU backend does) so both backends round alike. LARS adds
// two norm reductions before its pass; the trust ratio is formed on the device from them, so a
// LARS step never waits for the host (the CPU reference reads the norms back).
#include <cmath>

#include "kernels/common.cuh"
#include "kernels/optimizer.cuh"
#include "kernels/reduce.cuh"

namespace sw::kernels {
namespace {

// One element's SGD step from its effective gradient d (weight decay already in it).
__device__ __forceinline__ void sgd_step(float& p, float d, float* buf, const SgdArgs& a,
                                         float damp) {
  if (buf) {
    const float b = a.firstStep ? d : a.momentum * *buf + damp * d;
    *buf = b;
    d = a.nesterov ? d + a.momentum * b : b;
  }
  p -= a.lr * d;
}

__global__ void sgd_update_kernel(float* __restrict__ p, const float* __restrict__ g,
                                  float* __restrict__ buf, int64_t n, SgdArgs a) {
  const float damp = 1.f - a.dampening;
  SW_GRID_LOOP(i, n) {
    float pi = p[i];
    sgd_step(pi, g[i] + a.weightDecay * pi, buf ? buf + i : nullptr, a, damp);
    p[i] = pi;
  }
}

__global__ void adam_update_kernel(float* __restrict__ p, const float* __restrict__ g,
                                   float* __restrict__ m, float* __restrict__ v,
                                   float* __restrict__ vmax, int64_t n, float b1, float b2,
                                   float eps, float wd, float stepSize, float bc2sqrt) {
  SW_GRID_LOOP(i, n) {
    const float d = g[i] + wd * p[i];
    const float mi = b1 * m[i] + (1.f - b1) * d;
    const float vi = b2 * v[i] + (1.f - b2) * d * d;
    m[i] = mi;
    v[i] = vi;
    float vv = vi;
    if (vmax) {
      vv = fmaxf(vmax[i], vi);
      vmax[i] = vv;
    }
    p[i] -= stepSize * mi / (sqrtf(vv) / bc2sqrt + eps);
  }
}

// norms = {|W|^2, |g|^2}. Every thread forms the clipping factor from them (a few double
// operations; cheaper than a third launch and a round trip through memory).
__global__ void lars_update_kernel(float* __restrict__ p, float* __restrict__ g,
                                   float* __restrict__ buf, int64_t n, LarsArgs a,
                                   const double* __restrict__ norms) {
  const double pn = sqrt(norms[0]), gn = sqrt(norms[1]);
  const bool clip = pn != 0.0 && gn != 0.0;
  const float wd = a.sgd.weightDecay;
  float factor = 1.f;
  if (clip) {
    const double local = a.trust * pn / (gn + wd * pn + a.eps);
    factor = static_cast<float>(fmin(local / a.sgd.lr, 1.0));
  }
  const float damp = 1.f - a.sgd.dampening;
  SW_GRID_LOOP(i, n) {
    float gi = g[i];
    if (clip) {
      gi = (wd != 0.f ? gi + wd * p[i] : gi) * factor;
      g[i] = gi;  // the clipped gradient stays in grad, as on the CPU
    }
    float pi = p[i];
    sgd_step(pi, gi, buf ? buf + i : nullptr, a.sgd, damp);
    p[i] = pi;
  }
}

}  // namespace

void sgdUpdate(float* param, const float* grad, float* buf, int64_t n, const SgdArgs& a,
               cudaStream_t s) {
  if (n == 0) return;
  sgd_update_kernel<<<gridFor(n), 256, 0, s>>>(param, grad, a.momentum != 0.f ? buf : nullptr, n, a);
  SW_KCHECK(cudaGetLastError());
}

void adamUpdate(float* param, const float* grad, float* m, float* v, float* vmax, int64_t n,
                const AdamArgs& a, cudaStream_t s) {
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(double(a.beta1), double(a.step));
  const double bc2 = 1.0 - std::pow(double(a.beta2), double(a.step));
  adam_update_kernel<<<gridFor(n), 256, 0, s>>>(param, grad, m, v, a.amsgrad ? vmax : nullptr, n,
                                                a.beta1, a.beta2, a.eps, a.weightDecay,
                                                float(a.lr / bc1), float(std::sqrt(bc2)));
  SW_KCHECK(cudaGetLastError());
}

int64_t larsScratch(int64_t n) { return sumScratch(n) + 2; }

void larsUpdate(float* param, float* grad, float* buf, int64_t n, const LarsArgs& a,
                double* scratch, cudaStream_t s) {
  if (n == 0) return;
  // The second reduction reuses the first's partials: the stream orders it after the first.
  double* norms = scratch + sumScratch(n);
  sum(param, n, /*squares=*/true, scratch, norms, s);
  sum(grad, n, /*squares=*/true, scratch, norms + 1, s);
  lars_update_kernel<<<gridFor(n), 256, 0, s>>>(param, grad, a.sgd.momentum != 0.f ? buf : nullptr,
                                                n, a, norms);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
