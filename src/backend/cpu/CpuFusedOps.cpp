// CpuBackend's fused training ops: the optimizer updates (SGD, Adam, LARS), SpecTrain's weight
// prediction, the reversible coupling and the DTP losses. They are the reference for the CUDA
// kernels of the same names, and they give bit for bit what the chains of elementwise ops they
// replaced gave: each loop keeps those ops' roundings with at most one multiply-add per
// statement, so the compiler's FMA contraction falls where it fell before.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/Dims.h"
#include "backend/cpu/CpuBackend.h"
#include "core/Error.h"

namespace sw {
namespace {

// Sums K per-element terms over [0, n) in double: fixed chunks of 4096 elements, each summed in
// index order, then the chunks in order, so the value does not depend on the thread count (a
// DTP loss is then the same on every rank layout). term(i, acc) adds element i's terms to acc.
template <size_t K, class Term>
std::array<double, K> chunkedSums(int64_t n, Term term) {
  constexpr int64_t kChunk = 4096;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::array<double, K>> part(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t c = 0; c < chunks; ++c) {
    std::array<double, K> acc{};
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) term(i, acc);
    part[size_t(c)] = acc;
  }
  std::array<double, K> s{};
  for (const auto& p : part)
    for (size_t k = 0; k < K; ++k) s[k] += p[k];
  return s;
}

}  // namespace

void CpuBackend::sgdUpdate(Tensor& param, const Tensor& grad, Tensor& buf, const SgdOpts& o,
                           bool firstStep) {
  const int64_t n = param.numel();
  float* p = param.data();
  const float* g = grad.data();
  float* b = o.momentum != 0.f ? buf.data() : nullptr;
  const float wd = o.weightDecay, mu = o.momentum, damp = 1.f - o.dampening, lr = o.lr;
  const bool nest = o.nesterov;
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float d = g[i] + wd * p[i];
    if (b) {
      const float bi = firstStep ? d : mu * b[i] + damp * d;
      b[i] = bi;
      d = nest ? d + mu * bi : bi;
    }
    p[i] -= lr * d;
  }
}

void CpuBackend::adamUpdate(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax,
                            const AdamOpts& o) {
  const int64_t n = param.numel();
  float* p = param.data();
  const float* g = grad.data();
  float* mp = m.data();
  float* vp = v.data();
  float* vm = o.amsgrad ? vmax.data() : nullptr;
  const float b1 = o.beta1, b2 = o.beta2, wd = o.weightDecay, eps = o.eps;
  const double bc1 = 1.0 - std::pow(static_cast<double>(b1), static_cast<double>(o.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(b2), static_cast<double>(o.step));
  const float stepSize = static_cast<float>(o.lr / bc1);
  const float bc2sqrt = static_cast<float>(std::sqrt(bc2));
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * p[i];
    mp[i] = b1 * mp[i] + (1.f - b1) * d;
    vp[i] = b2 * vp[i] + (1.f - b2) * d * d;
    float vv = vp[i];
    if (vm) {
      vm[i] = std::max(vm[i], vv);
      vv = vm[i];
    }
    const float denom = std::sqrt(vv) / bc2sqrt + eps;
    p[i] -= stepSize * mp[i] / denom;
  }
}

void CpuBackend::larsUpdate(Tensor& param, Tensor& grad, Tensor& buf, const LarsOpts& o,
                            bool firstStep) {
  checkSameCount(param, grad, "larsUpdate");
  const float wd = o.sgd.weightDecay;
  const double pn = std::sqrt(sumSquares(param)), gn = std::sqrt(sumSquares(grad));
  if (pn != 0.0 && gn != 0.0) {
    // LARC clipping: the trust ratio over lr, capped at 1 (a step never grows).
    const double local = o.trust * pn / (gn + wd * pn + o.eps);
    const float a = static_cast<float>(std::min(local / o.sgd.lr, 1.0));
    const int64_t n = grad.numel();
    float* g = grad.data();
    const float* p = param.data();
    if (wd != 0.f) {
#pragma omp parallel for simd if (n > 65536)
      for (int64_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * p[i];
        g[i] = d * a;
      }
    } else {
#pragma omp parallel for simd if (n > 65536)
      for (int64_t i = 0; i < n; ++i) g[i] *= a;
    }
  }
  SgdOpts s = o.sgd;
  s.weightDecay = 0.f;  // applied inside the clipping
  sgdUpdate(param, grad, buf, s, firstStep);
}

void CpuBackend::predictWeights(const Tensor& w, const Tensor& buf, const Tensor& lastD,
                                float momentum, float step, Tensor& out) {
  checkSameCount(w, out, "predictWeights");
  checkSameCount(w, buf, "predictWeights");
  checkSameCount(w, lastD, "predictWeights");
  const int64_t n = w.numel();
  const float* wp = w.data();
  const float* b = buf.defined() ? buf.data() : nullptr;
  const float* d = lastD.defined() ? lastD.data() : nullptr;
  float* op = out.data();
  const float a = -step;
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    float dir = d ? d[i] : 0.f;
    if (b) dir += momentum * b[i];
    op[i] = wp[i] + a * dir;
  }
}

void CpuBackend::coupling(Coupling dir, const Tensor& x, const Tensor& f, Tensor& out) {
  const int64_t n = x.dim(0), half = couplingHalf(x, f, out);
  const float* xp = x.data();
  const float* fp = f.data();
  float* op = out.data();
#pragma omp parallel for if (x.numel() > 65536)
  for (int64_t s = 0; s < n; ++s) {
    const float* x1 = xp + 2 * s * half;
    const float* x2 = x1 + half;
    const float* fs = fp + s * half;
    float* o1 = op + 2 * s * half;
    float* o2 = o1 + half;
    if (dir == Coupling::kForward) {
      for (int64_t j = 0; j < half; ++j) o1[j] = x2[j] + fs[j];
      std::memcpy(o2, x1, sizeof(float) * size_t(half));
    } else {
      std::memcpy(o1, x2, sizeof(float) * size_t(half));
      for (int64_t j = 0; j < half; ++j) o2[j] = x1[j] - fs[j];
    }
  }
}

double CpuBackend::dtpDrlLoss(const Tensor& dx, const Tensor& dTilde, const Tensor& dHat,
                              float gradScale, Tensor* upTilde, Tensor* upHat) {
  checkSameCount(dx, dTilde, "dtpDrlLoss");
  checkSameCount(dx, dHat, "dtpDrlLoss");
  checkSameCount(dx, upTilde ? *upTilde : Tensor(), "dtpDrlLoss");
  checkSameCount(dx, upHat ? *upHat : Tensor(), "dtpDrlLoss");
  const int64_t B = dx.dim(0);
  const float* a = dx.data();
  const float* rt = dTilde.data();
  const float* rh = dHat.data();
  float* ut = upTilde ? upTilde->data() : nullptr;
  float* uh = upHat ? upHat->data() : nullptr;
  const float kt = -2.f * gradScale / float(B), kh = 2.f * gradScale / float(B);
  // dHat is read before upHat is written, element by element: the two may be one tensor.
  const auto s = chunkedSums<2>(dx.numel(), [&](int64_t i, std::array<double, 2>& acc) {
    const float h = rh[i];
    acc[0] += double(a[i]) * rt[i];
    acc[1] += double(h) * h;
    if (ut) ut[i] = kt * a[i];
    if (uh) uh[i] = kh * h;
  });
  return (-2.0 * s[0] + s[1]) / double(B);
}

LogitStats CpuBackend::dtpFirstTarget(const Tensor& z, const Tensor& labels, float beta,
                                      Tensor& t) {
  checkSameCount(z, t, "dtpFirstTarget");
  Tensor delta = empty(z.shape());
  LogitStats st;
  st.ce = softmaxXentForward(z, labels, delta);
  st.correct = countCorrect(z, labels);
  // delta = -beta (p - e_y) in place of p: the per-sample gradient of the summed cross-entropy.
  softmaxXentBackward(delta, labels, delta, -beta);
  add(z, delta, t);
  return st;
}

void CpuBackend::dtpDifferenceTarget(const Tensor& h, const Tensor& gt, const Tensor& gh,
                                     Tensor& t) {
  checkSameCount(h, gt, "dtpDifferenceTarget");
  checkSameCount(h, gh, "dtpDifferenceTarget");
  checkSameCount(h, t, "dtpDifferenceTarget");
  const int64_t n = h.numel();
  const float* hp = h.data();
  const float* a = gt.data();
  const float* b = gh.data();
  float* tp = t.data();
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) tp[i] = (hp[i] + a[i]) - b[i];
}

double CpuBackend::dtpLocalLoss(const Tensor& h, const Tensor& t, Tensor& grad) {
  checkSameCount(h, t, "dtpLocalLoss");
  checkSameCount(h, grad, "dtpLocalLoss");
  const int64_t B = h.dim(0);
  const float* hp = h.data();
  const float* tp = t.data();
  float* g = grad.data();
  const float inv = 1.f / float(B);
  const auto s = chunkedSums<1>(h.numel(), [&](int64_t i, std::array<double, 1>& acc) {
    const float d = hp[i] - tp[i];
    acc[0] += double(d) * d;
    g[i] = d * inv;
  });
  return 0.5 * s[0] / double(B);
}

}  // namespace sw
