// makeBackend: picks the compute backend named by runtime.device. CPU threads: runtime.threads,
// else OMP_NUM_THREADS, else the host's cores divided among the ranks that share it (the
// single-node rank simulation must not run ranks x cores threads).
#include <omp.h>

#include <cstdlib>

#include "core/Error.h"
#include "train/Trainer.h"

namespace sw {

std::unique_ptr<Backend> makeBackend(const RuntimeSection& rt) {
  if (rt.device == "cuda")
    throw ConfigError("runtime.device = cuda: this build has no usable CUDA backend");
  int threads = rt.threads;
  if (threads == 0) {
    if (const char* e = std::getenv("OMP_NUM_THREADS")) threads = std::atoi(e);
    if (threads <= 0) threads = std::max(1, omp_get_num_procs() / std::max(1, rt.localRanks));
  }
  return makeCpuBackend(threads, rt.cpuConv == "im2col" ? CpuConv::kIm2col : CpuConv::kAuto);
}

}  // namespace sw
