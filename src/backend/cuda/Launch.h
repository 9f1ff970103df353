// launch(): runs a kernel launcher and re-types its errors (kernels/ stays free of src/, so its
// launchers throw std::runtime_error; the backend reports DeviceError).
#pragma once
#include <stdexcept>
#include <utility>

#include "core/Error.h"

namespace sw::detail {

// Kernel launchers throw std::runtime_error (kernels/ stays free of src/); re-type it here.
template <class F>
void launch(F&& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    throw DeviceError(e.what());
  }
}

}  // namespace sw::detail
