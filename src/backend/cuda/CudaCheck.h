// Error checks for CUDA runtime, cuBLAS and cuDNN calls: each throws sw::DeviceError naming the
// call, the library's message and the location (DESIGN.md D: library code throws, never exits).
// Built with SW_SYNC_DEBUG (cmake -DSW_SYNC_DEBUG=ON), every checked call and every kernel launch
// (Launch.h) is followed by a device-wide synchronisation and an error check, so an asynchronous
// fault (an illegal address in a kernel) is reported at the call that caused it, not at a later
// copy.
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
inline void cudaThrow(cudaError_t e, const char* expr, const char* file, int line, const char* when = "") {
  throw DeviceError(std::string("CUDA error ") + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")" + when +
                    where(expr, file, line));
}
// SW_SYNC_DEBUG: wait for the device and report any fault of what was just issued.
inline void syncDebug(const char* expr, const char* file, int line) {
#ifdef SW_SYNC_DEBUG
  cudaError_t e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaGetLastError();
  if (e != cudaSuccess) cudaThrow(e, expr, file, line, ", found by SW_SYNC_DEBUG right after");
#else
  (void)expr, (void)file, (void)line;
#endif
}
inline void cudaCheck(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess) cudaThrow(e, expr, file, line);
  syncDebug(expr, file, line);
}
inline void cublasCheck(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(std::string("cuBLAS error ") + cublasGetStatusName(s) + " (" +
                      cublasGetStatusString(s) + ")" + where(expr, file, line));
  syncDebug(expr, file, line);
}
inline void cudnnCheck(cudnnStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUDNN_STATUS_SUCCESS)
    throw DeviceError(std::string("cuDNN error ") + cudnnGetErrorString(s) +
                      where(expr, file, line));
  syncDebug(expr, file, line);
}

}  // namespace sw::detail

#define SW_CUDA_CHECK(expr) ::sw::detail::cudaCheck((expr), #expr, __FILE__, __LINE__)
#define SW_CUBLAS_CHECK(expr) ::sw::detail::cublasCheck((expr), #expr, __FILE__, __LINE__)
#define SW_CUDNN_CHECK(expr) ::sw::detail::cudnnCheck((expr), #expr, __FILE__, __LINE__)
