// Views of a tensor's shape shared by the backends: the row-major 2-D view of GEMM operands
// (rank 1 is one row), the spatial extent after the batch and feature dimensions, GEMM sizes.
#pragma once
#include <cstdint>

#include "backend/Backend.h"
#include "core/Tensor.h"

namespace sw {

inline int64_t rows2d(const Tensor& t) { return t.rank() == 1 ? 1 : t.dim(0); }
inline int64_t cols2d(const Tensor& t) { return t.rank() == 1 ? t.dim(0) : t.numel() / t.dim(0); }
inline int64_t spatial(const Tensor& t) {
  int64_t s = 1;
  for (int i = 2; i < t.rank(); ++i) s *= t.dim(i);
  return s;
}

// C[m, n] = op(A)[m, k] op(B)[k, n] on the row-major 2-D views; lda/ldb are the stored row
// lengths of A and B. Throws ShapeError when the operands do not fit.
struct GemmDims {
  int64_t m, n, k, lda, ldb;
};
GemmDims gemmDims(const Tensor& a, const Tensor& b, const Tensor& c, const GemmOpts& o);

// Channel counts of splitChannels / concatChannels: x [n, ca + cb, ...] and its halves a, b. An
// undefined half (allowed where `op` is a split) takes the channels the other leaves. Throws
// ShapeError naming `op` when the shapes do not fit.
struct ChannelHalves {
  int64_t ca, cb;
};
ChannelHalves channelHalves(const Tensor& x, const Tensor& a, const Tensor& b, const char* op);

// Throws ShapeError naming `op` unless a and b hold as many elements (an undefined b passes).
void checkSameCount(const Tensor& a, const Tensor& b, const char* op);
// Elements per sample of one half of the coupling pair x [n, 2C, ...] (Backend::coupling), after
// checking that f is one half and out the whole pair.
int64_t couplingHalf(const Tensor& x, const Tensor& f, const Tensor& out);

}  // namespace sw
