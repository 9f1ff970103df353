// Error checks for CUDA runtime, cuBLAS and cuDNN calls: each throws sw::DeviceError naming the
// call, the library's message and the location (DESIGN.md D: library code throws, never exits).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "core/Error.h"

namespace sw::detail {

inline std::string where(const char* expr, const char* file, int line) {
  return std::string(" in ") + expr + " at " + file + ":" + std::to_string(line);
}
inline void cudaCheck(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess)
    throw DeviceError(std::string("CUDA error ") + cudaGetErrorName(e) + " (" +
                      cudaGetErrorString(e) + ")" + where(expr, file, line));
}
inline void cublasCheck(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(std::string("cuBLAS error ") + cublasGetStatusName(s) + " (" +
                      cublasGetStatusString(s) + ")" + where(expr, file, line));
}
inline void cudnnCheck(cudnnStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw DeviceError(std::string("cuDNN error ") + cudnnGetErrorString(s) +
                      where(expr, file, line));
}

}  // namespace sw::detail

#define SW_CUDA_CHECK(expr) ::sw::detail::cudaCheck((expr), #expr, __FILE__, __LINE__)
#define SW_CUBLAS_CHECK(expr) ::sw::detail::cublasCheck((expr), #expr, __FILE__, __LINE__)
#define SW_CUDNN_CHECK(expr) ::sw::detail::cudnnCheck((expr), #expr, __FILE__, __LINE__)
