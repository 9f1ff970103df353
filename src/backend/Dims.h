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

}  // namespace sw
