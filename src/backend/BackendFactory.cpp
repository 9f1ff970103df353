// makeBackend: picks the compute backend named by runtime.device. cuda: the CUDA backend on GPU
// local rank % device count (ranks of one host spread over its GPUs; several ranks share a GPU
// when there are more ranks than GPUs), an error when no device is usable; auto: cuda when a
// device is usable, else the CPU. CPU threads: runtime.threads, else OMP_NUM_THREADS, else the
// host's cores divided among the ranks that share it (the single-node rank simulation must not
// run ranks x cores threads). cpu-staged: the CPU backend behind a device tag, which makes the
// trainers stage every tensor they exchange or read like device memory (tests of that path).
#include <omp.h>

#include <cstdlib>

#include "core/Error.h"
#include "backend/BackendFactory.h"

namespace sw {

int cpuThreads(const BackendOptions& rt) {
  int threads = rt.threads;
  if (threads == 0) {
    if (const char* e = std::getenv("OMP_NUM_THREADS")) threads = std::atoi(e);
    if (threads <= 0) threads = std::max(1, omp_get_num_procs() / std::max(1, rt.localRanks));
  }
  return threads;
}

std::unique_ptr<Backend> makeBackend(const BackendOptions& rt) {
  if (rt.device == "cuda" || rt.device == "auto") {
    const int devices = cudaDeviceCount();
    if (devices > 0) return makeCudaBackend(rt.localRank % devices);
    if (rt.device == "cuda") {
#ifdef SW_CUDA_BACKEND
      throw ConfigError("runtime.device = cuda: no usable CUDA device (no GPU or no driver); "
                        "use runtime.device = cpu or auto");
#else
      throw ConfigError("runtime.device = cuda: this build has no usable CUDA backend "
                        "(configure with nvcc and cuDNN); use runtime.device = cpu or auto");
#endif
    }
  }
  const int threads = cpuThreads(rt);
  const CpuConv conv = rt.cpuConv == "im2col" ? CpuConv::kIm2col : CpuConv::kAuto;
  if (rt.device == "cpu-staged") return makeStagingTestBackend(threads, conv);
  return makeCpuBackend(threads, conv);
}

}  // namespace sw
