// makeBackend: picks the compute backend named by runtime.device.
#include "core/Error.h"
#include "train/Trainer.h"

namespace sw {

std::unique_ptr<Backend> makeBackend(const RuntimeSection& rt) {
  if (rt.device == "cuda")
    throw ConfigError("runtime.device = cuda: this build has no usable CUDA backend");
  return makeCpuBackend(rt.threads);
}

}  // namespace sw
