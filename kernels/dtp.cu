// DTP kernels (see dtp.cuh). The reductions write per-block partials (block_reduce.cuh) that one
// block sums in a fixed order, so a loss is the same on every run; its value differs from the
// CPU's chunked double sum by the summation order only. The first target repeats the CPU's
// float operations with explicitly rounded intrinsics: nvcc would otherwise contract the
// multiply and the add into an FMA the CPU reference does not make.
#include "kernels/block_reduce.cuh"
#include "kernels/common.cuh"
#include "kernels/dtp.cuh"
#include "kernels/softmax_xent.cuh"

namespace sw::kernels {
namespace {

__global__ void drl_loss_kernel(const float* __restrict__ dx, const float* __restrict__ dTilde,
                                const float* dHat, int64_t n, float kTilde, float kHat,
                                float* __restrict__ upTilde, float* upHat,
                                double* __restrict__ partial) {
  double cross = 0, sq = 0;
  SW_GRID_LOOP(i, n) {
    const float a = dx[i], h = dHat[i];
    cross += double(a) * dTilde[i];
    sq += double(h) * h;
    if (upTilde) upTilde[i] = kTilde * a;
    if (upHat) upHat[i] = kHat * h;  // may overwrite dHat[i]: read above by this thread
  }
  cross = blockSum(cross);
  sq = blockSum(sq);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = cross;
    partial[2 * blockIdx.x + 1] = sq;
  }
}

__global__ void local_loss_kernel(const float* __restrict__ h, const float* __restrict__ t,
                                  float* __restrict__ grad, int64_t n, float inv,
                                  double* __restrict__ partial) {
  double acc = 0;
  SW_GRID_LOOP(i, n) {
    const float d = h[i] - t[i];
    acc += double(d) * d;
    grad[i] = d * inv;
  }
  acc = blockSum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void difference_target_kernel(const float* __restrict__ h, const float* __restrict__ gt,
                                         const float* __restrict__ gh, float* __restrict__ t,
                                         int64_t n) {
  SW_GRID_LOOP(i, n) t[i] = (h[i] + gt[i]) - gh[i];
}

// p (in t) -> z + nb (p - e_y) with nb = -beta, rounded as the CPU's softmaxXentBackward(scale =
// nb) followed by add: d = nb p, d_y = d - nb, t = z + d.
__global__ void first_target_kernel(const float* __restrict__ z, const int32_t* __restrict__ y,
                                    float* __restrict__ t, int64_t total, int64_t k, float nb) {
  SW_GRID_LOOP(i, total) {
    const int64_t row = i / k, col = i - row * k;
    float d = __fmul_rn(nb, t[i]);
    if (col == y[row]) d = __fsub_rn(d, nb);
    t[i] = __fadd_rn(z[i], d);
  }
}

}  // namespace

int64_t dtpScratch(int64_t n) { return 2 * int64_t(reduceBlocks(n)) + 2; }

double* dtpDrlLoss(const float* dx, const float* dTilde, const float* dHat, int64_t n,
                   float kTilde, float kHat, float* upTilde, float* upHat, double* scratch,
                   cudaStream_t s) {
  const int blocks = reduceBlocks(n);
  double* sums = scratch + 2 * int64_t(blocks);
  drl_loss_kernel<<<blocks, kReduceThreads, 0, s>>>(dx, dTilde, dHat, n, kTilde, kHat, upTilde,
                                                    upHat, scratch);
  SW_KCHECK(cudaGetLastError());
  finalSums(scratch, blocks, 2, sums, s);
  return sums;
}

double* dtpLocalLoss(const float* h, const float* t, float* grad, int64_t n, float inv,
                     double* scratch, cudaStream_t s) {
  const int blocks = reduceBlocks(n);
  double* sum = scratch + blocks;
  local_loss_kernel<<<blocks, kReduceThreads, 0, s>>>(h, t, grad, n, inv, scratch);
  SW_KCHECK(cudaGetLastError());
  finalSums(scratch, blocks, 1, sum, s);
  return sum;
}

void dtpDifferenceTarget(const float* h, const float* gt, const float* gh, float* t, int64_t n,
                         cudaStream_t s) {
  if (n == 0) return;
  difference_target_kernel<<<gridFor(n), 256, 0, s>>>(h, gt, gh, t, n);
  SW_KCHECK(cudaGetLastError());
}

void dtpFirstTarget(const float* z, const int32_t* labels, float* t, double* rowLoss,
                    int32_t* badRow, unsigned long long* correct, int64_t n, int64_t k, float beta,
                    cudaStream_t s) {
  if (n == 0) return;
  softmaxXentForward(z, labels, t, rowLoss, badRow, n, k, s);
  countCorrect(z, labels, n, k, correct, s);
  first_target_kernel<<<gridFor(n * k), 256, 0, s>>>(z, labels, t, n * k, k, -beta);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
