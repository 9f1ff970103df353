// Difference target propagation's losses and targets on device (src/dtp/Dtp.h, L-DRL of Ernoult
// et al. 2022): the L-DRL loss with its upstream gradients, the first target from the logits, the
// difference target and the layer-local loss with its gradient. Losses are sums in double by
// deterministic two-pass reductions; the caller copies the few doubles back.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
// Doubles of scratch the loss reductions need for n elements (partials and results).
int64_t dtpScratch(int64_t n);
// Sums, in double: [sum dx * dTilde, sum dHat^2]; with upTilde / upHat non-null also writes
// upTilde = kTilde dx and upHat = kHat dHat (upHat may be dHat). Returns the device address of
// the two sums (inside scratch).
double* dtpDrlLoss(const float* dx, const float* dTilde, const float* dHat, int64_t n,
                   float kTilde, float kHat, float* upTilde, float* upHat, double* scratch,
                   cudaStream_t s);
// Writes grad = (h - t) * inv; returns the device address of sum (h - t)^2 (inside scratch).
double* dtpLocalLoss(const float* h, const float* t, float* grad, int64_t n, float inv,
                     double* scratch, cudaStream_t s);
// t = (h + gt) - gh.
void dtpDifferenceTarget(const float* h, const float* gt, const float* gh, float* t, int64_t n,
                         cudaStream_t s);
// t = z - beta (softmax(z) - onehot(labels)) for z [n, k], with softmaxXentForward's per-row
// losses and bad-label marker and countCorrect's count (softmax_xent.cuh), all in one pass of
// launches: t first holds the probabilities, then becomes the target in place.
void dtpFirstTarget(const float* z, const int32_t* labels, float* t, double* rowLoss,
                    int32_t* badRow, unsigned long long* correct, int64_t n, int64_t k, float beta,
                    cudaStream_t s);
}  // namespace sw::kernels
