// Device discovery. Any error (no driver: cudaErrorInsufficientDriver, no GPU: cudaErrorNoDevice,
// stub library) means "CPU only"; the error is cleared so later calls start clean.
#include "kernels/device.cuh"

#include <cuda_runtime.h>

namespace sw::kernels {

int deviceCount() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace sw::kernels
