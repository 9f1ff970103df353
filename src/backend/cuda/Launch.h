// launch(): runs a kernel launcher and re-types its errors (kernels/ stays free of src/, so its
// launchers throw std::runtime_error; the backend reports DeviceError).
#pragma once
#include <source_location>
#include <stdexcept>
#include <utility>

#include "backend/cuda/CudaCheck.h"
#include "core/Error.h"

namespace sw::detail {

// Kernel launchers throw std::runtime_error (kernels/ stays free of src/); re-type it here.
// With SW_SYNC_DEBUG the launch is followed by a synchronisation that names this call site.
template <class F>
void launch(F&& f, std::source_location at = std::source_location::current()) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    throw DeviceError(e.what());
  }
  syncDebug(at.function_name(), at.file_name(), int(at.line()));
}

}  // namespace sw::detail
