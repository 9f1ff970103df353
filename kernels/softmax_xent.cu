// Softmax cross-entropy kernels (see softmax_xent.cuh). One block per row: class counts are small
// (10-1000), batches are hundreds of rows, so a block per row fills the device and keeps the
// reductions simple and in a fixed order.
#include <cmath>

#include "kernels/common.cuh"
#include "kernels/softmax_xent.cuh"

namespace sw::kernels {
namespace {

constexpr int kThreads = 128;

template <class T, class Op>
__device__ T blockReduce(T v, Op op, T identity) {
  __shared__ T smem[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? smem[lane] : identity;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
    if (lane == 0) smem[0] = v;
  }
  __syncthreads();
  v = smem[0];
  __syncthreads();  // smem is reused by the next call
  return v;
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};

__global__ void xent_forward_kernel(const float* __restrict__ logits,
                                    const int32_t* __restrict__ labels, float* __restrict__ probs,
                                    double* __restrict__ rowLoss, int32_t* badRow, int64_t k) {
  const int64_t i = blockIdx.x;
  const float* row = logits + i * k;
  float* pr = probs + i * k;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = blockReduce(mx, MaxOp(), -INFINITY);
  double s = 0;
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
    const float e = expf(row[j] - mx);
    pr[j] = e;
    s += e;
  }
  s = blockReduce(s, SumOp(), 0.0);
  const float inv = static_cast<float>(1.0 / s);
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) pr[j] *= inv;
  if (threadIdx.x == 0) {
    const int32_t y = labels[i];
    if (y < 0 || y >= k) {
      rowLoss[i] = NAN;
      atomicMin(badRow, static_cast<int32_t>(i));
    } else {
      rowLoss[i] = -(static_cast<double>(row[y]) - mx - log(s));
    }
  }
}

__global__ void xent_backward_kernel(const float* __restrict__ p, const int32_t* __restrict__ y,
                                     float* __restrict__ d, int64_t total, int64_t k,
                                     float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = i / k, col = i % k;
    const float v = scale * p[i];
    d[i] = col == y[row] ? v - scale : v;
  }
}

// One warp per row; the first maximum wins (strict >), as on the CPU.
__global__ void count_correct_kernel(const float* __restrict__ logits,
                                     const int32_t* __restrict__ labels, int64_t n, int64_t k,
                                     unsigned long long* correct) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (i >= n) return;
  const float* row = logits + i * k;
  float best = -INFINITY;
  int64_t bi = k;  // "none yet": loses every tie-break
  for (int64_t j = lane; j < k; j += 32) {
    const float v = row[j];
    if (bi == k || v > best) best = v, bi = j;
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_down_sync(0xffffffffu, best, o);
    const int64_t oi = __shfl_down_sync(0xffffffffu, bi, o);
    if (oi != k && (bi == k || ov > best || (ov == best && oi < bi))) best = ov, bi = oi;
  }
  if (lane == 0 && bi == labels[i]) atomicAdd(correct, 1ull);
}

}  // namespace

void softmaxXentForward(const float* logits, const int32_t* labels, float* probs,
                        double* rowLoss, int32_t* badRow, int64_t n, int64_t k, cudaStream_t s) {
  if (n == 0) return;
  xent_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, s>>>(logits, labels, probs, rowLoss,
                                                                   badRow, k);
  SW_KCHECK(cudaGetLastError());
}

void softmaxXentBackward(const float* probs, const int32_t* labels, float* dlogits, int64_t n,
                         int64_t k, float scale, cudaStream_t s) {
  const int64_t total = n * k;
  if (total == 0) return;
  xent_backward_kernel<<<gridFor(total), 256, 0, s>>>(probs, labels, dlogits, total, k, scale);
  SW_KCHECK(cudaGetLastError());
}

void countCorrect(const float* logits, const int32_t* labels, int64_t n, int64_t k,
                  unsigned long long* correct, cudaStream_t s) {
  if (n == 0) return;
  const int rowsPerBlock = 8;
  const unsigned blocks = static_cast<unsigned>((n + rowsPerBlock - 1) / rowsPerBlock);
  count_correct_kernel<<<blocks, 32 * rowsPerBlock, 0, s>>>(logits, labels, n, k, correct);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
