// CudaBackend: the Backend on one CUDA device. cuBLAS GEMM (row-major through the transpose
// identity), cuDNN 9 convolutions (legacy API; algorithm per geometry chosen once by cuDNN's
// heuristics, one workspace reused and grown) and batch norm, our kernels/ for everything else.
// All work is queued on one compute stream; ops that return a host value (losses, sums, counts)
// and copies to the host synchronise it. Host <-> device copies go through pinned staging blocks
// (PinnedStaging), so uploads are queued without waiting for the device. fp32 throughout: TF32 is off unless CudaOptions allow it,
// so results are comparable with the CPU reference.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <memory>
#include <string>
#include <unordered_map>

#include "backend/Backend.h"

namespace sw {

class PinnedStaging;

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, CudaOptions o);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;
  std::string name() const override { return "cuda"; }
  Device device() const override { return Device::cuda(device_); }
  cudaStream_t stream() const { return stream_; }
  void* nativeStream() override { return stream_; }

  Tensor empty(const Shape& s) override;
  Tensor zeros(const Shape& s) override;
  void fill(Tensor& t, float v) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void synchronize() override;

  void gemm(const Tensor& a, const Tensor& b, Tensor& c, GemmOpts o) override;
  void addBias(Tensor& y, const Tensor& bias) override;
  void biasGrad(const Tensor& dy, Tensor& db, Accumulate acc) override;

  void convForward(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y,
                   const ConvGeom& g) override;
  void convBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx, const ConvGeom& g,
                        Accumulate acc) override;
  void convBackwardFilter(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db,
                          const ConvGeom& g, Accumulate acc) override;

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

  void splitChannels(const Tensor& x, Tensor& a, Tensor& b) override;
  void concatChannels(const Tensor& a, const Tensor& b, Tensor& x) override;
  void adaptiveAvgPoolForward(const Tensor& x, Tensor& y) override;
  void adaptiveAvgPoolBackward(const Tensor& dy, Tensor& dx) override;

  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void axpy(float alpha, const Tensor& x, Tensor& y) override;
  void scale(Tensor& x, float alpha) override;
  double sumSquares(const Tensor& x) override;
  double sum(const Tensor& x) override;

  void sgdUpdate(Tensor& param, const Tensor& grad, Tensor& buf, const SgdOpts& o,
                 bool firstStep) override;
  void adamUpdate(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, Tensor& vmax,
                  const AdamOpts& o) override;
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

  // Convolution geometries planned so far (descriptors + algorithms cached per ConvGeom::key).
  size_t convPlans() const { return plans_.size(); }
  // Page-locked bytes held by the host <-> device staging blocks.
  size_t pinnedBytes() const;

 private:
  void releaseAll() noexcept;  // the destructor's work, also for a constructor that fails
  struct ConvPlan;
  ConvPlan& plan(const ConvGeom& g);
  void* workspace(size_t bytes);
  // Device pointer of t, which must live on this backend's device (DeviceError otherwise).
  float* dev(const Tensor& t, const char* op) const;
  // Labels on the device: used in place when already there, else uploaded into a scratch buffer.
  const int32_t* deviceLabels(const Tensor& labels);
  // Device scratch of at least `count` doubles (reused; stream order makes reuse safe).
  double* scratchDoubles(int64_t count);
  // Softmax results in device scratch: n row losses (double), the bad-label marker (int32, in
  // slot n) and a correct-row counter (uint64, slot n + 1). rowSlots() sets the marker and clears
  // the counter; readRows() copies all back, throws DataError on a bad label and returns the mean
  // loss (summed on the host in row order, like the CPU backend) and the count.
  double* rowSlots(int64_t n);
  LogitStats readRows(const double* rows, int64_t n, int64_t k, const Tensor& labels);
  double reduce(const Tensor& x, bool squares);

  int device_;
  CudaOptions opts_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cudnnHandle_t dnn_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<ConvPlan>> plans_;
  Tensor workspace_, labels_, scratch_;
  std::unique_ptr<PinnedStaging> staging_;
};

}  // namespace sw
