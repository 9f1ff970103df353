// Softmax cross-entropy on device for logits [n, k] and int32 labels [n]: forward (probabilities
// and per-row losses), backward and the count of rows whose argmax is the label.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sw::kernels {
// probs = softmax(logits) per row; rowLoss[i] = -log softmax(logits)[i, labels[i]] in double.
// A label outside [0, k) leaves rowLoss[i] = NaN and stores min(i) into *badRow, which the
// caller initialises to INT32_MAX and checks after copying back.
void softmaxXentForward(const float* logits, const int32_t* labels, float* probs,
                        double* rowLoss, int32_t* badRow, int64_t n, int64_t k, cudaStream_t s);
// d[i, j] = scale * p[i, j] - (j == labels[i] ? scale : 0): the same two float operations, in
// the same order, as the CPU backend.
void softmaxXentBackward(const float* probs, const int32_t* labels, float* dlogits, int64_t n,
                         int64_t k, float scale, cudaStream_t s);
// *correct += number of rows whose first maximum is at the label (the caller zeroes it).
void countCorrect(const float* logits, const int32_t* labels, int64_t n, int64_t k,
                  unsigned long long* correct, cudaStream_t s);
}  // namespace sw::kernels
