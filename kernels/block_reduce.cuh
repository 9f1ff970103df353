// Block-wide sums for the deterministic reductions of kernels/ (reduce.cu, optimizer.cu, dtp.cu):
// a fixed tree per block (warp shuffles, then one warp over the warp sums), partials written per
// block and summed by one block in a second launch. No atomics, so a sum is the same on every
// run (float atomics would make losses and gradients non-reproducible).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {

constexpr int kReduceThreads = 256;
constexpr int kReduceMaxBlocks = 1024;

// Blocks of kReduceThreads for a grid-stride reduction over n elements.
inline int reduceBlocks(int64_t n) {
  const int64_t b = (n + kReduceThreads - 1) / kReduceThreads;
  return static_cast<int>(b < 1 ? 1 : (b > kReduceMaxBlocks ? kReduceMaxBlocks : b));
}

#ifdef __CUDACC__
// Sums v over a block of kReduceThreads threads; the result is valid in thread 0. May be called
// several times in one kernel (the trailing barrier frees the shared buffer for the next call).
template <class T>
__device__ T blockSum(T v) {
  __shared__ T smem[kReduceThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? smem[threadIdx.x] : T(0);
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  __syncthreads();
  return v;
}
#endif

// The second pass: out[j] = sum over b < blocks of partial[b * k + j], for j < k, by one block in
// a fixed order (reduce.cu).
void finalSums(const double* partial, int blocks, int k, double* out, cudaStream_t s);

}  // namespace sw::kernels
