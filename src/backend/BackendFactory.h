// makeBackend: the compute backend a run asks for (runtime.device, runtime.threads,
// runtime.cpu_conv), for the trainer and the tools.
#pragma once
#include <memory>
#include <string>

#include "backend/Backend.h"

namespace sw {

struct BackendOptions {
  std::string device = "cpu";  // cpu | cuda | auto | cpu-staged (tests of the staging path)
  int threads = 0;             // 0: OMP_NUM_THREADS, else the host's cores over its ranks
  std::string cpuConv = "auto";
  int localRanks = 1, localRank = 0;  // ranks sharing this host, and this rank's index there
};

std::unique_ptr<Backend> makeBackend(const BackendOptions& o);
// The CPU threads a backend made from `o` uses.
int cpuThreads(const BackendOptions& o);

}  // namespace sw
