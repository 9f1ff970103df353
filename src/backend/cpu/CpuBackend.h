// CpuBackend: reference and fast host implementation. GEMM on oneDNN's sgemm or OpenBLAS (OpenMP
// builds, so the libraries and our loops share one thread pool instead of pools spinning against
// each other); convolution on oneDNN's direct kernels where they exist for the shape (DnnlConv),
// else as batched im2col + one large GEMM per group of samples; everything else as OpenMP loops.
#pragma once
#include <memory>
#include <vector>

#include "backend/Backend.h"

namespace sw {

class DnnlConv;

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads);
  ~CpuBackend() override;
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::cpu(); }
  void setThreads(int n) override;
  int threads() const { return threads_; }

  Tensor empty(const Shape& s) override { return Tensor::empty(s); }
  Tensor zeros(const Shape& s) override { return Tensor::zeros(s); }
  void fill(Tensor& t, float v) override;
  void copy(const Tensor& src, Tensor& dst) override;

  void gemm(const Tensor& a, const Tensor& b, Tensor& c, GemmOpts o) override;
  void addBias(Tensor& y, const Tensor& bias) override;
  void biasGrad(const Tensor& dy, Tensor& db, Accumulate acc) override;

  void convForward(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y,
                   const ConvGeom& g) override;
  void convBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const ConvGeom& g,
                        Accumulate acc) override;
  void convBackwardFilter(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db,
                          const ConvGeom& g, Accumulate acc) override;
  void convBackward(const Tensor& x, const Tensor& dy, const Tensor& w, Tensor* dw,
                    Accumulate accW, Tensor* dx, const ConvGeom& g) override;
  void setConvImpl(CpuConv c) { convImpl_ = c; }
  // Whether convolutions of geometry g run on oneDNN's kernels (else im2col + GEMM).
  bool convUsesOneDnn(const ConvGeom& g) { return dnnl(g) != nullptr; }

  void actForward(Act a, float alpha, const Tensor& x, Tensor& y) override;
  void actBackward(Act a, float alpha, const Tensor& x, const Tensor& y, const Tensor& dy,
                   Tensor& dx) override;

  void maxPoolForward(const Tensor& x, Tensor& y, Tensor& idx, const PoolGeom& g) override;
  void maxPoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx, const PoolGeom& g) override;
  void maxUnpoolForward(const Tensor& x, const Tensor& idx, Tensor& y, const PoolGeom& g) override;
  void maxUnpoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx,
                         const PoolGeom& g) override;
  void avgPoolForward(const Tensor& x, Tensor& y, const PoolGeom& g) override;
  void avgPoolBackward(const Tensor& dy, Tensor& dx, const PoolGeom& g) override;

  void batchNormForwardTrain(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                             Tensor& saveMean, Tensor& saveInvStd, Tensor& runMean, Tensor& runVar,
                             BatchNormOpts o) override;
  void batchNormForwardEval(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                            const Tensor& runMean, const Tensor& runVar, BatchNormOpts o) override;
  void batchNormBackward(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                         const Tensor& saveMean, const Tensor& saveInvStd, Tensor& dx,
                         Tensor& dgamma, Tensor& dbeta, Accumulate acc) override;

  void dropoutForward(const Tensor& x, Tensor& y, Tensor& mask, float p, Rng& rng) override;
  void mul(const Tensor& a, const Tensor& b, Tensor& out) override;

  float softmaxXentForward(const Tensor& logits, const Tensor& labels, Tensor& probs) override;
  void softmaxXentBackward(const Tensor& probs, const Tensor& labels, Tensor& dlogits,
                           float scale) override;
  int64_t countCorrect(const Tensor& logits, const Tensor& labels) override;

  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void axpy(float alpha, const Tensor& x, Tensor& y) override;
  void scale(Tensor& x, float alpha) override;
  void splitChannels(const Tensor& x, Tensor& a, Tensor& b) override;
  void concatChannels(const Tensor& a, const Tensor& b, Tensor& x) override;
  void adaptiveAvgPoolForward(const Tensor& x, Tensor& y) override;
  void adaptiveAvgPoolBackward(const Tensor& dy, Tensor& dx) override;
  double sumSquares(const Tensor& x) override;
  double sum(const Tensor& x) override;

  void sgdUpdate(Tensor& param, const Tensor& grad, Tensor& buf, const SgdOpts& o,
                 bool firstStep) override;
  void adamUpdate(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax,
                  const AdamOpts& o) override;
  // CpuFusedOps.cpp: the optimizer updates above and below, the coupling and the DTP losses.
  void larsUpdate(Tensor& param, Tensor& grad, Tensor& buf, const LarsOpts& o,
                  bool firstStep) override;
  void predictWeights(const Tensor& w, const Tensor& buf, const Tensor& lastD, float momentum,
                      float step, Tensor& out) override;
  void coupling(Coupling dir, const Tensor& x, const Tensor& f, Tensor& out) override;
  double dtpDrlLoss(const Tensor& dx, const Tensor& dTilde, const Tensor& dHat, float gradScale,
                    Tensor* upTilde, Tensor* upHat) override;
  LogitStats dtpFirstTarget(const Tensor& z, const Tensor& labels, float beta, Tensor& t) override;
  void dtpDifferenceTarget(const Tensor& h, const Tensor& gt, const Tensor& gh, Tensor& t) override;
  double dtpLocalLoss(const Tensor& h, const Tensor& t, Tensor& grad) override;

 private:
  // Samples per im2col group: enough columns for an efficient GEMM, bounded scratch memory.
  int64_t groupSize(const ConvGeom& g) const;
  float* scratch(size_t idx, size_t floats);
  DnnlConv* dnnl(const ConvGeom& g);  // null: use im2col for g
  int threads_ = 1;
  CpuConv convImpl_ = CpuConv::kAuto;
  std::unique_ptr<DnnlConv> dnnl_;
  std::vector<Tensor> scratch_;
};

}  // namespace sw
