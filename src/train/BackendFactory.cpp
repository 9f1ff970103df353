// makeBackend: picks the compute backend named by runtime.device. cuda: the CUDA backend on GPU
// local rank % device count (ranks of one host spread over its GPUs; several ranks share a GPU
// when there are more ranks than GPUs), an error when no device is usable; auto: cuda when a
// device is usable, else the CPU. CPU threads: runtime.threads, else OMP_NUM_THREADS, else the
// host's cores divided among the ranks that share it (the single-node rank simulation must not
// run ranks x cores threads).
#include <omp.h>

#include <cstdlib>

#include "core/Error.h"
#include "train/Trainer.h"

namespace sw {

std::unique_ptr<Backend> makeBackend(const RuntimeSection& rt) {
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
  int threads = rt.threads;
  if (threads == 0) {
    if (const char* e = std::getenv("OMP_NUM_THREADS")) threads = std::atoi(e);
    if (threads <= 0) threads = std::max(1, omp_get_num_procs() / std::max(1, rt.localRanks));
  }
  return makeCpuBackend(threads, rt.cpuConv == "im2col" ? CpuConv::kIm2col : CpuConv::kAuto);
}

std::unique_ptr<Backend> makeTrainingBackend(const RuntimeSection& rt) {
  if (rt.device == "cuda")
    throw ConfigError("runtime.device = cuda: training on the CUDA backend is not wired into the trainers yet "
                      "(the backend and its tests exist, README 'GPU'); use runtime.device = cpu or auto");
  RuntimeSection cpu = rt;
  cpu.device = "cpu";
  return makeBackend(cpu);
}

}  // namespace sw
