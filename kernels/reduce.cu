// Reductions (see reduce.cuh). Both are tree reductions in a fixed order, so a result does not
// change from run to run (float atomics would make gradients non-reproducible).
#include "kernels/common.cuh"
#include "kernels/reduce.cuh"

namespace sw::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

// Sums v over the block; the result is valid in thread 0.
template <class T>
__device__ T blockSum(T v) {
  __shared__ T smem[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? smem[threadIdx.x] : T(0);
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();  // smem may be reused by a second call
  return v;
}

__global__ void partial_sum_kernel(const float* __restrict__ x, int64_t n, bool squares,
                                   double* __restrict__ partial) {
  double acc = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const double v = x[i];
    acc += squares ? v * v : v;
  }
  acc = blockSum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void final_sum_kernel(const double* __restrict__ partial, int blocks,
                                 double* __restrict__ out) {
  double acc = 0;
  for (int i = threadIdx.x; i < blocks; i += blockDim.x) acc += partial[i];
  acc = blockSum(acc);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void bias_grad_kernel(const float* __restrict__ dy, float* __restrict__ db, int64_t n,
                                 int64_t features, int64_t spatial, bool accumulate) {
  const int64_t f = blockIdx.x, m = n * spatial;
  double acc = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t i = j / spatial, s = j % spatial;
    acc += dy[(i * features + f) * spatial + s];
  }
  acc = blockSum(acc);
  if (threadIdx.x == 0) db[f] = static_cast<float>(accumulate ? db[f] + acc : acc);
}

int blocksFor(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<int>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

}  // namespace

int64_t sumScratch(int64_t n) { return blocksFor(n) + 1; }

void sum(const float* x, int64_t n, bool squares, double* scratch, double* out, cudaStream_t s) {
  const int blocks = blocksFor(n);
  partial_sum_kernel<<<blocks, kThreads, 0, s>>>(x, n, squares, scratch);
  SW_KCHECK(cudaGetLastError());
  final_sum_kernel<<<1, kThreads, 0, s>>>(scratch, blocks, out);
  SW_KCHECK(cudaGetLastError());
}

void biasGrad(const float* dy, float* db, int64_t n, int64_t features, int64_t spatial,
              bool accumulate, cudaStream_t s) {
  if (features == 0) return;
  bias_grad_kernel<<<static_cast<unsigned>(features), kThreads, 0, s>>>(dy, db, n, features,
                                                                        spatial, accumulate);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
