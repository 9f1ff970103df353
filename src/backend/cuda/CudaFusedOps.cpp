// CudaBackend's fused ops (see Backend.h; CPU references in backend/cpu/CpuFusedOps.cpp): the
// optimizer updates, SpecTrain's weight prediction, the reversible coupling and DTP's losses and
// targets, each one kernel of kernels/ (a few scalars come back instead of whole tensors).
#include <cmath>

#include "backend/Dims.h"
#include "backend/cuda/CudaBackend.h"
#include "backend/cuda/CudaCheck.h"
#include "backend/cuda/Launch.h"
#include "backend/cuda/PinnedStaging.h"
#include "kernels/dtp.cuh"
#include "kernels/optimizer.cuh"
#include "kernels/reversible.cuh"
#include "kernels/spectrain.cuh"

namespace sw {

using detail::launch;

void CudaBackend::sgdUpdate(Tensor& param, const Tensor& grad, Tensor& buf, const SgdOpts& o,
                            bool firstStep) {
  float* b = o.momentum != 0.f ? dev(buf, "sgdUpdate") : nullptr;
  const kernels::SgdArgs a{o.lr, o.momentum, o.dampening, o.weightDecay, o.nesterov, firstStep};
  launch([&] {
    kernels::sgdUpdate(dev(param, "sgdUpdate"), dev(grad, "sgdUpdate"), b, param.numel(), a, stream_);
  });
}

void CudaBackend::adamUpdate(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v,
                             Tensor& vmax, const AdamOpts& o) {
  float* vm = o.amsgrad ? dev(vmax, "adamUpdate") : nullptr;
  const kernels::AdamArgs a{o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.amsgrad, o.step};
  launch([&] {
    kernels::adamUpdate(dev(param, "adamUpdate"), dev(grad, "adamUpdate"), dev(m, "adamUpdate"),
                        dev(v, "adamUpdate"), vm, param.numel(), a, stream_);
  });
}

void CudaBackend::larsUpdate(Tensor& param, Tensor& grad, Tensor& buf, const LarsOpts& o,
                             bool firstStep) {
  checkSameCount(param, grad, "larsUpdate");
  const SgdOpts& g = o.sgd;
  float* b = g.momentum != 0.f ? dev(buf, "larsUpdate") : nullptr;
  const kernels::LarsArgs a{{g.lr, g.momentum, g.dampening, g.weightDecay, g.nesterov, firstStep},
                            o.trust, o.eps};
  double* scratch = scratchDoubles(kernels::larsScratch(param.numel()));
  launch([&] {
    kernels::larsUpdate(dev(param, "larsUpdate"), dev(grad, "larsUpdate"), b, param.numel(), a,
                        scratch, stream_);
  });
}

void CudaBackend::predictWeights(const Tensor& w, const Tensor& buf, const Tensor& lastD,
                                 float momentum, float step, Tensor& out) {
  checkSameCount(w, buf, "predictWeights");
  checkSameCount(w, lastD, "predictWeights");
  checkSameCount(w, out, "predictWeights");
  const float* b = buf.defined() ? dev(buf, "predictWeights") : nullptr;
  const float* d = lastD.defined() ? dev(lastD, "predictWeights") : nullptr;
  launch([&] {
    kernels::predictWeights(dev(w, "predictWeights"), b, d, momentum, step,
                            dev(out, "predictWeights"), w.numel(), stream_);
  });
}

void CudaBackend::coupling(Coupling dir, const Tensor& x, const Tensor& f, Tensor& out) {
  const int64_t n = x.dim(0), half = couplingHalf(x, f, out);
  const auto kdir = dir == Coupling::kForward ? kernels::CouplingDir::kForward : kernels::CouplingDir::kInverse;
  launch([&] {
    kernels::coupling(kdir, dev(x, "coupling"), dev(f, "coupling"), dev(out, "coupling"), n, half,
                      stream_);
  });
}

double CudaBackend::dtpDrlLoss(const Tensor& dx, const Tensor& dTilde, const Tensor& dHat,
                               float gradScale, Tensor* upTilde, Tensor* upHat) {
  const int64_t n = dx.numel(), B = dx.dim(0);
  checkSameCount(dx, dTilde, "dtpDrlLoss");
  checkSameCount(dx, dHat, "dtpDrlLoss");
  checkSameCount(dx, upTilde ? *upTilde : Tensor(), "dtpDrlLoss");
  checkSameCount(dx, upHat ? *upHat : Tensor(), "dtpDrlLoss");
  // The same float constants as the CPU reference.
  const float kt = -2.f * gradScale / float(B), kh = 2.f * gradScale / float(B);
  double* scratch = scratchDoubles(kernels::dtpScratch(n));
  double* sums = nullptr;
  launch([&] {
    sums = kernels::dtpDrlLoss(dev(dx, "dtpDrlLoss"), dev(dTilde, "dtpDrlLoss"), dev(dHat, "dtpDrlLoss"),
                               n, kt, kh, upTilde ? dev(*upTilde, "dtpDrlLoss") : nullptr,
                               upHat ? dev(*upHat, "dtpDrlLoss") : nullptr, scratch, stream_);
  });
  double host[2];
  staging_->download(host, sums, sizeof host);
  return (-2.0 * host[0] + host[1]) / double(B);
}

LogitStats CudaBackend::dtpFirstTarget(const Tensor& z, const Tensor& labels, float beta,
                                       Tensor& t) {
  checkSameCount(z, t, "dtpFirstTarget");
  const int64_t n = z.dim(0), k = cols2d(z);
  const int32_t* y = deviceLabels(labels);
  double* rows = rowSlots(n);
  launch([&] {
    kernels::dtpFirstTarget(dev(z, "dtpFirstTarget"), y, dev(t, "dtpFirstTarget"), rows,
                            reinterpret_cast<int32_t*>(rows + n),
                            reinterpret_cast<unsigned long long*>(rows + n + 1), n, k, beta, stream_);
  });
  return readRows(rows, n, k, labels);
}

void CudaBackend::dtpDifferenceTarget(const Tensor& h, const Tensor& gt, const Tensor& gh,
                                      Tensor& t) {
  checkSameCount(h, gt, "dtpDifferenceTarget");
  checkSameCount(h, gh, "dtpDifferenceTarget");
  checkSameCount(h, t, "dtpDifferenceTarget");
  launch([&] {
    kernels::dtpDifferenceTarget(dev(h, "dtpDifferenceTarget"), dev(gt, "dtpDifferenceTarget"),
                                 dev(gh, "dtpDifferenceTarget"), dev(t, "dtpDifferenceTarget"),
                                 h.numel(), stream_);
  });
}

double CudaBackend::dtpLocalLoss(const Tensor& h, const Tensor& t, Tensor& grad) {
  checkSameCount(h, t, "dtpLocalLoss");
  checkSameCount(h, grad, "dtpLocalLoss");
  const int64_t n = h.numel(), B = h.dim(0);
  double* scratch = scratchDoubles(kernels::dtpScratch(n));
  double* sum = nullptr;
  launch([&] {
    sum = kernels::dtpLocalLoss(dev(h, "dtpLocalLoss"), dev(t, "dtpLocalLoss"), dev(grad, "dtpLocalLoss"),
                                n, 1.f / float(B), scratch, stream_);
  });
  double host = 0;
  staging_->download(&host, sum, sizeof host);
  return 0.5 * host / double(B);
}

}  // namespace sw
