// CudaBackend (see CudaBackend.h). Shape checks mirror the CPU backend's; every device pointer
// goes through dev(), which rejects host tensors with a hint instead of faulting on the GPU.
#include "backend/cuda/CudaBackend.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/Dims.h"
#include "backend/cuda/CudaCheck.h"
#include "backend/cuda/DeviceAllocator.h"
#include "backend/cuda/Launch.h"
#include "backend/cuda/PinnedStaging.h"
#include "kernels/activation.cuh"
#include "kernels/device.cuh"
#include "kernels/dtp.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/optimizer.cuh"
#include "kernels/pool.cuh"
#include "kernels/reduce.cuh"
#include "kernels/reversible.cuh"
#include "kernels/softmax_xent.cuh"
#include "kernels/spectrain.cuh"

namespace sw {
using detail::launch;
namespace {

// RAII for the cuDNN descriptor types (create/destroy pairs).
template <class T, cudnnStatus_t (*Create)(T*), cudnnStatus_t (*Destroy)(T)>
class Desc {
 public:
  Desc() { SW_CUDNN_CHECK(Create(&d_)); }
  ~Desc() { Destroy(d_); }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  operator T() const { return d_; }

 private:
  T d_{};
};
using TensorDesc = Desc<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc = Desc<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Desc<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                      cudnnDestroyConvolutionDescriptor>;

void setNchw(cudnnTensorDescriptor_t d, int64_t n, int64_t c, int64_t h, int64_t w) {
  SW_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(n), int(c),
                                            int(h), int(w)));
}

kernels::PoolDims poolDims(const PoolGeom& g) {
  kernels::PoolDims d;
  d.planes = g.n * g.c, d.h = g.h, d.w = g.w, d.oh = g.oh, d.ow = g.ow;
  d.kernel = g.kernel, d.stride = g.stride, d.pad = g.pad;
  return d;
}

// The first algorithm cuDNN's heuristics rank as usable within the workspace limit.
template <class Perf>
Perf pickAlgo(const std::vector<Perf>& perf, int count, size_t limit, const char* what,
              const ConvGeom& g) {
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit) return perf[i];
  throw DeviceError(std::string("cuDNN offers no ") + what + " algorithm for convolution " +
                    g.key() + " within " + std::to_string(limit) + " bytes of workspace");
}

}  // namespace

// Descriptors and chosen algorithms of one convolution geometry.
struct CudaBackend::ConvPlan {
  TensorDesc x, y, bias;
  FilterDesc w;
  ConvDesc conv;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwdData{};
  cudnnConvolutionBwdFilterAlgo_t bwdFilter{};
  size_t fwdBytes = 0, bwdDataBytes = 0, bwdFilterBytes = 0;
};

CudaBackend::CudaBackend(int device, CudaOptions o) : device_(device), opts_(o) {
  const int n = kernels::deviceCount();
  if (device < 0 || device >= n)
    throw DeviceError("CUDA device " + std::to_string(device) + " requested but " +
                      std::to_string(n) + " device(s) are usable");
  // A constructor that throws runs no destructor: release what was made before rethrowing.
  try {
    SW_CUDA_CHECK(cudaSetDevice(device));
    installDeviceAllocator();
    SW_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    staging_ = std::make_unique<PinnedStaging>(stream_, o.maxPinnedBytes);
    SW_CUBLAS_CHECK(cublasCreate(&blas_));
    SW_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    SW_CUBLAS_CHECK(cublasSetMathMode(blas_, o.allowTf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    SW_CUDNN_CHECK(cudnnCreate(&dnn_));
    SW_CUDNN_CHECK(cudnnSetStream(dnn_, stream_));
  } catch (...) {
    releaseAll();
    throw;
  }
}

CudaBackend::~CudaBackend() { releaseAll(); }

void CudaBackend::releaseAll() noexcept {
  // Pending kernels may still read buffers owned here; errors cannot be thrown from here.
  if (stream_) cudaStreamSynchronize(stream_);
  plans_.clear();
  if (dnn_) cudnnDestroy(dnn_);
  if (blas_) cublasDestroy(blas_);
  dnn_ = nullptr;
  blas_ = nullptr;
  staging_.reset();
  workspace_ = labels_ = scratch_ = Tensor();
  if (stream_) cudaStreamDestroy(stream_);
  stream_ = nullptr;
}

float* CudaBackend::dev(const Tensor& t, const char* op) const {
  if (!t.defined()) throw DeviceError(std::string(op) + ": undefined tensor");
  if (!(t.device() == device()))
    throw DeviceError(std::string(op) + ": tensor " + t.shape().str() + " is on " +
                      t.device().str() + ", the backend on " + device().str() +
                      " (move it with Backend::fromHost / copy)");
  return const_cast<float*>(t.data());
}

void* CudaBackend::workspace(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (!workspace_.defined() || workspace_.bytes() < bytes)
    workspace_ = empty(Shape{static_cast<int64_t>((bytes + 3) / 4)});
  return workspace_.data();
}

double* CudaBackend::scratchDoubles(int64_t count) {
  if (!scratch_.defined() || scratch_.numel() < 2 * count) scratch_ = empty(Shape{2 * count});
  return reinterpret_cast<double*>(scratch_.data());
}

size_t CudaBackend::pinnedBytes() const { return staging_->pinnedBytes(); }

double* CudaBackend::rowSlots(int64_t n) {
  double* rows = scratchDoubles(n + 2);
  const int32_t none = INT32_MAX;
  SW_CUDA_CHECK(cudaMemsetAsync(rows + n, 0, 2 * sizeof(double), stream_));
  staging_->upload(rows + n, &none, sizeof none);
  return rows;
}

LogitStats CudaBackend::readRows(const double* rows, int64_t n, int64_t k, const Tensor& labels) {
  std::vector<double> host(size_t(n) + 2);
  staging_->download(host.data(), rows, host.size() * sizeof(double));
  int32_t badRow;
  unsigned long long correct;
  std::memcpy(&badRow, &host[size_t(n)], sizeof badRow);
  std::memcpy(&correct, &host[size_t(n) + 1], sizeof correct);
  if (badRow != INT32_MAX) {
    const std::string value =
        labels.device().isCpu() ? std::to_string(labels.data<int32_t>()[badRow]) : "(on device)";
    throw DataError("label " + value + " out of range [0, " + std::to_string(k) +
                    ") in sample " + std::to_string(badRow) + " of the batch");
  }
  // Summed on the host in row order, like the CPU backend's double accumulator.
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += host[size_t(i)];
  // The mean in float, as softmaxXentForward returns it on both backends.
  return {static_cast<double>(static_cast<float>(total / n)), static_cast<int64_t>(correct)};
}

const int32_t* CudaBackend::deviceLabels(const Tensor& labels) {
  if (labels.device() == device()) return labels.data<int32_t>();
  if (!labels.device().isCpu())
    throw DeviceError("labels on " + labels.device().str() + ", backend on " + device().str());
  if (!labels_.defined() || labels_.numel() < labels.numel())
    labels_ = empty(Shape{std::max<int64_t>(labels.numel(), 1)});
  // Staged at once, so the host buffer may change after.
  staging_->upload(labels_.data(), labels.data(), labels.bytes());
  return labels_.data<int32_t>();
}

Tensor CudaBackend::empty(const Shape& s) { return Tensor::empty(s, device()); }

Tensor CudaBackend::zeros(const Shape& s) {
  Tensor t = empty(s);
  if (t.numel()) SW_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.bytes(), stream_));
  return t;
}

void CudaBackend::fill(Tensor& t, float v) {
  launch([&] { kernels::fill(dev(t, "fill"), v, t.numel(), stream_); });
}

void CudaBackend::copy(const Tensor& src, Tensor& dst) {
  if (src.numel() != dst.numel())
    throw ShapeError("copy " + src.shape().str() + " -> " + dst.shape().str());
  if (src.numel() == 0 || src.data() == dst.data()) return;
  const bool fromHost = src.device().isCpu(), toHost = dst.device().isCpu();
  if (fromHost && toHost) {
    std::memcpy(dst.data(), src.data(), src.bytes());
    return;
  }
  if (!fromHost) dev(src, "copy");
  if (!toHost) dev(dst, "copy");
  if (fromHost) {
    staging_->upload(dst.data(), src.data(), src.bytes());
  } else if (toHost) {
    // The caller reads host memory as soon as copy returns: download waits for the copy.
    staging_->download(dst.data(), src.data(), src.bytes());
  } else {
    SW_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.bytes(), cudaMemcpyDeviceToDevice, stream_));
  }
}

void CudaBackend::synchronize() { SW_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void CudaBackend::gemm(const Tensor& a, const Tensor& b, Tensor& c, GemmOpts o) {
  const GemmDims d = gemmDims(a, b, c, o);
  // cuBLAS is column-major: a row-major X is X^T to it, so C^T = op(B)^T op(A)^T is computed by
  // passing B first, with the same transpose flags and the row lengths as leading dimensions.
  SW_CUBLAS_CHECK(cublasSgemm(blas_, o.transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                              o.transA ? CUBLAS_OP_T : CUBLAS_OP_N, int(d.n), int(d.m), int(d.k),
                              &o.alpha, dev(b, "gemm"), int(d.ldb), dev(a, "gemm"), int(d.lda),
                              &o.beta, dev(c, "gemm"), int(d.n)));
}

void CudaBackend::addBias(Tensor& y, const Tensor& bias) {
  launch([&] {
    kernels::addBias(dev(y, "addBias"), dev(bias, "addBias"), y.dim(0), y.dim(1), spatial(y),
                     stream_);
  });
}

void CudaBackend::biasGrad(const Tensor& dy, Tensor& db, Accumulate acc) {
  launch([&] {
    kernels::biasGrad(dev(dy, "biasGrad"), dev(db, "biasGrad"), dy.dim(0), dy.dim(1), spatial(dy),
                      acc == Accumulate::kYes, stream_);
  });
}

CudaBackend::ConvPlan& CudaBackend::plan(const ConvGeom& g) {
  auto it = plans_.find(g.key());
  if (it != plans_.end()) return *it->second;
  auto p = std::make_unique<ConvPlan>();
  setNchw(p->x, g.n, g.c, g.h, g.w);
  setNchw(p->y, g.n, g.k, g.oh, g.ow);
  setNchw(p->bias, 1, g.k, 1, 1);
  SW_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(g.k),
                                            int(g.c), int(g.r), int(g.s)));
  SW_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, int(g.pad), int(g.pad), int(g.stride),
                                                 int(g.stride), 1, 1, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));
  // FMA math keeps fp32 convolutions off TF32 tensor cores (PyTorch's allow_tf32 = False).
  SW_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, opts_.allowTf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  const size_t limit = opts_.maxWorkspaceBytes;
  int count = 0, max = 0;
  {
    SW_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(dnn_, &max));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(std::max(max, 1));
    SW_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(dnn_, p->x, p->w, p->conv, p->y, max,
                                                          &count, perf.data()));
    const auto best = pickAlgo(perf, count, limit, "forward", g);
    p->fwd = best.algo;
    SW_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(dnn_, p->x, p->w, p->conv, p->y,
                                                           p->fwd, &p->fwdBytes));
  }
  {
    SW_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(dnn_, &max));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(std::max(max, 1));
    SW_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(dnn_, p->w, p->y, p->conv, p->x,
                                                               max, &count, perf.data()));
    const auto best = pickAlgo(perf, count, limit, "backward-data", g);
    p->bwdData = best.algo;
    SW_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(dnn_, p->w, p->y, p->conv, p->x,
                                                                p->bwdData, &p->bwdDataBytes));
  }
  {
    SW_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(dnn_, &max));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(std::max(max, 1));
    SW_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(dnn_, p->x, p->y, p->conv, p->w,
                                                                 max, &count, perf.data()));
    const auto best = pickAlgo(perf, count, limit, "backward-filter", g);
    p->bwdFilter = best.algo;
    SW_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
        dnn_, p->x, p->y, p->conv, p->w, p->bwdFilter, &p->bwdFilterBytes));
  }
  return *plans_.emplace(g.key(), std::move(p)).first->second;
}

void CudaBackend::convForward(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y,
                              const ConvGeom& g) {
  ConvPlan& p = plan(g);
  const float one = 1.f, zero = 0.f;
  void* ws = workspace(p.fwdBytes);
  SW_CUDNN_CHECK(cudnnConvolutionForward(dnn_, &one, p.x, dev(x, "convForward"), p.w,
                                         dev(w, "convForward"), p.conv, p.fwd, ws, p.fwdBytes,
                                         &zero, p.y, dev(y, "convForward")));
  if (bias.defined()) addBias(y, bias);
}

void CudaBackend::convBackwardData(const Tensor& dy, const Tensor& w, Tensor& dx,
                                   const ConvGeom& g, Accumulate acc) {
  ConvPlan& p = plan(g);
  const float one = 1.f, beta = acc == Accumulate::kYes ? 1.f : 0.f;
  void* ws = workspace(p.bwdDataBytes);
  SW_CUDNN_CHECK(cudnnConvolutionBackwardData(dnn_, &one, p.w, dev(w, "convBackwardData"), p.y,
                                              dev(dy, "convBackwardData"), p.conv, p.bwdData, ws,
                                              p.bwdDataBytes, &beta, p.x,
                                              dev(dx, "convBackwardData")));
}

void CudaBackend::convBackwardFilter(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor* db,
                                     const ConvGeom& g, Accumulate acc) {
  ConvPlan& p = plan(g);
  const float one = 1.f, beta = acc == Accumulate::kYes ? 1.f : 0.f;
  void* ws = workspace(p.bwdFilterBytes);
  SW_CUDNN_CHECK(cudnnConvolutionBackwardFilter(dnn_, &one, p.x, dev(x, "convBackwardFilter"), p.y,
                                                dev(dy, "convBackwardFilter"), p.conv, p.bwdFilter,
                                                ws, p.bwdFilterBytes, &beta, p.w,
                                                dev(dw, "convBackwardFilter")));
  if (db) biasGrad(dy, *db, acc);
}

void CudaBackend::actForward(Act a, float alpha, const Tensor& x, Tensor& y) {
  launch([&] {
    kernels::actForward(int(a), alpha, dev(x, "actForward"), dev(y, "actForward"), x.numel(),
                        stream_);
  });
}

void CudaBackend::actBackward(Act a, float alpha, const Tensor& x, const Tensor& y,
                              const Tensor& dy, Tensor& dx) {
  // Each activation reads only x or y (see kernels/activation.cuh); the other may be undefined.
  const float* xp = x.defined() ? dev(x, "actBackward") : nullptr;
  const float* yp = y.defined() ? dev(y, "actBackward") : nullptr;
  launch([&] {
    kernels::actBackward(int(a), alpha, xp, yp, dev(dy, "actBackward"), dev(dx, "actBackward"),
                         dy.numel(), stream_);
  });
}

void CudaBackend::maxPoolForward(const Tensor& x, Tensor& y, Tensor& idx, const PoolGeom& g) {
  launch([&] {
    kernels::maxPoolForward(dev(x, "maxPool"), dev(y, "maxPool"),
                            reinterpret_cast<int32_t*>(dev(idx, "maxPool")), poolDims(g), stream_);
  });
}

void CudaBackend::maxPoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx,
                                  const PoolGeom& g) {
  launch([&] {
    kernels::maxPoolBackward(dev(dy, "maxPoolBackward"),
                             reinterpret_cast<const int32_t*>(dev(idx, "maxPoolBackward")),
                             dev(dx, "maxPoolBackward"), poolDims(g), stream_);
  });
}

void CudaBackend::maxUnpoolForward(const Tensor& x, const Tensor& idx, Tensor& y,
                                   const PoolGeom& g) {
  // As on the CPU: y is zero except at the recorded argmax, i.e. the pool's backward.
  maxPoolBackward(x, idx, y, g);
}

void CudaBackend::maxUnpoolBackward(const Tensor& dy, const Tensor& idx, Tensor& dx,
                                    const PoolGeom& g) {
  launch([&] {
    kernels::maxUnpoolBackward(dev(dy, "maxUnpoolBackward"),
                               reinterpret_cast<const int32_t*>(dev(idx, "maxUnpoolBackward")),
                               dev(dx, "maxUnpoolBackward"), poolDims(g), stream_);
  });
}

void CudaBackend::avgPoolForward(const Tensor& x, Tensor& y, const PoolGeom& g) {
  launch([&] { kernels::avgPoolForward(dev(x, "avgPool"), dev(y, "avgPool"), poolDims(g), stream_); });
}

void CudaBackend::avgPoolBackward(const Tensor& dy, Tensor& dx, const PoolGeom& g) {
  launch([&] {
    kernels::avgPoolBackward(dev(dy, "avgPoolBackward"), dev(dx, "avgPoolBackward"), poolDims(g),
                             stream_);
  });
}

namespace {
// x as [n, c, spatial, 1] and the derived per-channel [1, c, 1, 1] descriptor.
struct BnDescs {
  TensorDesc x, param;
  explicit BnDescs(const Tensor& t) {
    setNchw(x, t.dim(0), t.dim(1), spatial(t), 1);
    SW_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(param, x, CUDNN_BATCHNORM_SPATIAL));
  }
};
}  // namespace

void CudaBackend::batchNormForwardTrain(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        Tensor& y, Tensor& saveMean, Tensor& saveInvStd,
                                        Tensor& runMean, Tensor& runVar, BatchNormOpts o) {
  BnDescs d(x);
  const float one = 1.f, zero = 0.f;
  // cuDNN's running statistics follow PyTorch: run = (1 - f) run + f batch with the unbiased
  // batch variance; it saves the batch mean and 1 / sqrt(var + eps), the CPU's saveInvStd.
  SW_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, dev(x, "batchNorm"), d.x,
      dev(y, "batchNorm"), d.param, dev(gamma, "batchNorm"), dev(beta, "batchNorm"), o.momentum,
      dev(runMean, "batchNorm"), dev(runVar, "batchNorm"), o.eps, dev(saveMean, "batchNorm"),
      dev(saveInvStd, "batchNorm")));
}

void CudaBackend::batchNormForwardEval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       Tensor& y, const Tensor& runMean, const Tensor& runVar,
                                       BatchNormOpts o) {
  BnDescs d(x);
  const float one = 1.f, zero = 0.f;
  SW_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, d.x, dev(x, "batchNormEval"), d.x,
      dev(y, "batchNormEval"), d.param, dev(gamma, "batchNormEval"), dev(beta, "batchNormEval"),
      dev(runMean, "batchNormEval"), dev(runVar, "batchNormEval"), o.eps));
}

void CudaBackend::batchNormBackward(const Tensor& x, const Tensor& dy, const Tensor& gamma,
                                    const Tensor& saveMean, const Tensor& saveInvStd, Tensor& dx,
                                    Tensor& dgamma, Tensor& dbeta, Accumulate acc) {
  BnDescs d(x);
  const float one = 1.f, zero = 0.f, paramBeta = acc == Accumulate::kYes ? 1.f : 0.f;
  // cuDNN always writes dx; an undefined dx (first layer) gets a scratch buffer.
  Tensor dxOut = dx.defined() ? dx : empty(x.shape());
  // eps only matters when the saved statistics are absent; ours are always passed.
  SW_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &paramBeta, d.x,
      dev(x, "batchNormBackward"), d.x, dev(dy, "batchNormBackward"), d.x,
      dev(dxOut, "batchNormBackward"), d.param, dev(gamma, "batchNormBackward"),
      dev(dgamma, "batchNormBackward"), dev(dbeta, "batchNormBackward"), BatchNormOpts{}.eps,
      dev(saveMean, "batchNormBackward"), dev(saveInvStd, "batchNormBackward")));
}

void CudaBackend::dropoutForward(const Tensor& x, Tensor& y, Tensor& mask, float p, Rng& rng) {
  // The mask is drawn on the host RNG, exactly as the CPU backend draws it, then uploaded: the
  // same seed gives the same mask on every backend.
  const int64_t n = x.numel();
  Tensor host = Tensor::empty(mask.shape());
  float* mp = host.data();
  const float keep = 1.f / (1.f - p);
  for (int64_t i = 0; i < n; ++i) mp[i] = rng.uniform() >= p ? keep : 0.f;
  copy(host, mask);
  mul(x, mask, y);
}

void CudaBackend::mul(const Tensor& a, const Tensor& b, Tensor& out) {
  launch([&] { kernels::mul(dev(a, "mul"), dev(b, "mul"), dev(out, "mul"), a.numel(), stream_); });
}

float CudaBackend::softmaxXentForward(const Tensor& logits, const Tensor& labels, Tensor& probs) {
  const int64_t n = logits.dim(0), k = cols2d(logits);
  const int32_t* y = deviceLabels(labels);
  double* rows = rowSlots(n);
  launch([&] {
    kernels::softmaxXentForward(dev(logits, "softmaxXent"), y, dev(probs, "softmaxXent"), rows,
                                reinterpret_cast<int32_t*>(rows + n), n, k, stream_);
  });
  return static_cast<float>(readRows(rows, n, k, labels).ce);
}

void CudaBackend::softmaxXentBackward(const Tensor& probs, const Tensor& labels, Tensor& dlogits,
                                      float scale) {
  const int32_t* y = deviceLabels(labels);
  launch([&] {
    kernels::softmaxXentBackward(dev(probs, "softmaxXentBackward"), y,
                                 dev(dlogits, "softmaxXentBackward"), probs.dim(0), cols2d(probs),
                                 scale, stream_);
  });
}

int64_t CudaBackend::countCorrect(const Tensor& logits, const Tensor& labels) {
  const int32_t* y = deviceLabels(labels);
  auto* counter = reinterpret_cast<unsigned long long*>(scratchDoubles(1));
  SW_CUDA_CHECK(cudaMemsetAsync(counter, 0, sizeof *counter, stream_));
  launch([&] {
    kernels::countCorrect(dev(logits, "countCorrect"), y, logits.dim(0), cols2d(logits), counter,
                          stream_);
  });
  unsigned long long host = 0;
  staging_->download(&host, counter, sizeof host);
  return static_cast<int64_t>(host);
}

void CudaBackend::splitChannels(const Tensor& x, Tensor& a, Tensor& b) {
  const ChannelHalves h = channelHalves(x, a, b, "splitChannels");
  // Per sample, x holds a's block then b's: two pitched 2-D copies, one row per sample.
  const size_t sp = spatial(x), row = x.dim(1) * sp * 4, ra = h.ca * sp * 4, rb = h.cb * sp * 4;
  const size_t rows = x.dim(0);
  const char* src = reinterpret_cast<const char*>(dev(x, "splitChannels"));
  if (ra && a.defined()) SW_CUDA_CHECK(cudaMemcpy2DAsync(dev(a, "splitChannels"), ra, src, row, ra, rows, cudaMemcpyDeviceToDevice, stream_));
  if (rb && b.defined()) SW_CUDA_CHECK(cudaMemcpy2DAsync(dev(b, "splitChannels"), rb, src + ra, row, rb, rows, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::concatChannels(const Tensor& a, const Tensor& b, Tensor& x) {
  SW_CHECK(a.defined() && b.defined(), "concatChannels needs both halves");
  const ChannelHalves h = channelHalves(x, a, b, "concatChannels");
  const size_t sp = spatial(x), row = x.dim(1) * sp * 4, ra = h.ca * sp * 4, rb = h.cb * sp * 4;
  const size_t rows = x.dim(0);
  char* dst = reinterpret_cast<char*>(dev(x, "concatChannels"));
  if (ra) SW_CUDA_CHECK(cudaMemcpy2DAsync(dst, row, dev(a, "concatChannels"), ra, ra, rows, cudaMemcpyDeviceToDevice, stream_));
  if (rb) SW_CUDA_CHECK(cudaMemcpy2DAsync(dst + ra, row, dev(b, "concatChannels"), rb, rb, rows, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::adaptiveAvgPoolForward(const Tensor& x, Tensor& y) {
  kernels::PoolDims d;
  d.planes = x.dim(0) * x.dim(1), d.h = x.dim(2), d.w = x.dim(3), d.oh = y.dim(2), d.ow = y.dim(3);
  launch([&] { kernels::adaptiveAvgPoolForward(dev(x, "adaptiveAvgPool"), dev(y, "adaptiveAvgPool"), d, stream_); });
}

void CudaBackend::adaptiveAvgPoolBackward(const Tensor& dy, Tensor& dx) {
  kernels::PoolDims d;
  d.planes = dx.dim(0) * dx.dim(1), d.h = dx.dim(2), d.w = dx.dim(3), d.oh = dy.dim(2), d.ow = dy.dim(3);
  launch([&] {
    kernels::adaptiveAvgPoolBackward(dev(dy, "adaptiveAvgPoolBackward"),
                                     dev(dx, "adaptiveAvgPoolBackward"), d, stream_);
  });
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  launch([&] { kernels::add(dev(a, "add"), dev(b, "add"), dev(out, "add"), a.numel(), stream_); });
}

void CudaBackend::axpy(float alpha, const Tensor& x, Tensor& y) {
  launch([&] { kernels::axpy(alpha, dev(x, "axpy"), dev(y, "axpy"), x.numel(), stream_); });
}

void CudaBackend::scale(Tensor& x, float alpha) {
  launch([&] { kernels::scale(dev(x, "scale"), alpha, x.numel(), stream_); });
}

double CudaBackend::reduce(const Tensor& x, bool squares) {
  const int64_t doubles = kernels::sumScratch(x.numel());
  double* part = scratchDoubles(doubles);
  double* out = part + doubles - 1;
  launch([&] { kernels::sum(dev(x, "sum"), x.numel(), squares, part, out, stream_); });
  double host = 0;
  staging_->download(&host, out, sizeof host);
  return host;
}

double CudaBackend::sumSquares(const Tensor& x) { return reduce(x, true); }
double CudaBackend::sum(const Tensor& x) { return reduce(x, false); }

int cudaDeviceCount() { return kernels::deviceCount(); }

std::unique_ptr<Backend> makeCudaBackend(int device, CudaOptions o) {
  return std::make_unique<CudaBackend>(device, o);
}
}  // namespace sw
