// Additive coupling (see reversible.cuh): one grid-stride pass over the output pair; an element
// is one add or one copy, the same float operation as the CPU reference, so results are exact.
#include "kernels/common.cuh"
#include "kernels/reversible.cuh"

namespace sw::kernels {
namespace {

template <CouplingDir Dir>
__global__ void coupling_kernel(const float* __restrict__ x, const float* __restrict__ f,
                                float* __restrict__ out, int64_t total, int64_t half) {
  SW_GRID_LOOP(i, total) {
    const int64_t s = i / (2 * half), r = i - s * 2 * half;
    const float* xs = x + s * 2 * half;
    if (r < half) {  // first output half: x2 (+ f)
      const float v = xs[half + r];
      out[i] = Dir == CouplingDir::kForward ? v + f[s * half + r] : v;
    } else {  // second output half: x1 (- f)
      const int64_t q = r - half;
      const float v = xs[q];
      out[i] = Dir == CouplingDir::kForward ? v : v - f[s * half + q];
    }
  }
}

}  // namespace

void coupling(CouplingDir dir, const float* x, const float* f, float* out, int64_t n, int64_t half,
              cudaStream_t s) {
  const int64_t total = 2 * n * half;
  if (total == 0) return;
  if (dir == CouplingDir::kForward)
    coupling_kernel<CouplingDir::kForward><<<gridFor(total), 256, 0, s>>>(x, f, out, total, half);
  else
    coupling_kernel<CouplingDir::kInverse><<<gridFor(total), 256, 0, s>>>(x, f, out, total, half);
  SW_KCHECK(cudaGetLastError());
}

}  // namespace sw::kernels
