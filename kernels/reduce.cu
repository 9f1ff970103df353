// Reductions (see reduce.cuh). Both are tree reductions in a fixed order (block_reduce.cuh), so a
// result does not change from run to run.
#include "kernels/block_reduce.cuh"
#include "kernels/common.cuh"
#include "kernels/reduce.cuh"

namespace sw::kernels {
namespace {

__global__ void partial_sum_kernel(const float* __restrict__ x, int64_t n, bool squares,
                                   double* __restrict__ partial) {
  double acc = 0;
  SW_GRID_LOOP(i, n) {
    const double v = x[i];
    acc += squares ? v * v : v;
  }
  acc = blockSum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void final_sums_kernel(const double* __restrict__ partial, int blocks, int k,
                                  double* __restrict__ out) {
  for (int j = 0; j < k; ++j) {
    double acc = 0;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) acc += partial[int64_t(b) * k + j];
    acc = blockSum(acc);
    if (threadIdx.x == 0) out[j] = acc;
  }
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

}  // namespace

void finalSums(const double* partial, int blocks, int k, double* out, cudaStream_t s) {
  final_sums_kernel<<<1, kReduceThreads, 0, s>>>(partial, blocks, k, out);
  SW_KCHECK(cudaGetLastError());
}

int64_t sumScratch(int64_t n) { return reduceBlocks(n) + 1; }

void sum(const float* x, int64_t n, bool squares, double* scratch, double* out, cudaStream_t s) {
  const int blocks = reduceBlocks(n);
  partial_sum_kernel<<<blocks, kReduceThreads, 0, s>>>(x, n, squares, scratch);
  SW_KCHECK(cudaGetLastError());
  finalSums(scratch, blocks, 1, out, s);
}

void biasGrad(const float* dy, float* db, int64_t n, int64_t features, int64_t spatial,
              bool accumulate, cudaStream_t s) {
  if (features == 0) return;
  bias_grad_kernel<<<static_cast<unsigned>(features), kReduceThreads, 0, s>>>(dy, db, n, features,
                                                                              spatial, accumulate);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
