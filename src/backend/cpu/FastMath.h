// Transcendental activation loops compiled with -ffast-math (only this file), so that GCC calls
// glibc's vector exp/tanh (libmvec); the scalar expm1f alone took 14% of a simple_vgg step.
// Accuracy: a few ulp, and exp(x) - 1 instead of expm1 costs < 1e-7 absolute, well inside the
// goldens' tolerance. NaN/Inf are not special-cased here; callers' losses are checked for it.
#pragma once
#include <cstdint>

namespace sw::fastmath {
void elu(const float* x, float* y, int64_t n, float alpha);
void tanh(const float* x, float* y, int64_t n);
void sigmoid(const float* x, float* y, int64_t n);
}  // namespace sw::fastmath
