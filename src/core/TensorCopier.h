// TensorCopier: the small copy interface a device communicator needs (comm/DeviceComm.h) - the
// device its tensors live on, copies between host and device, and the compute stream's handle -
// so that comm depends on core only. Every Backend is one.
#pragma once
#include "core/Device.h"
#include "core/Tensor.h"

namespace sw {

class TensorCopier {
 public:
  virtual ~TensorCopier() = default;
  virtual Device device() const = 0;
  virtual void copy(const Tensor& src, Tensor& dst) = 0;  // any device pair
  // The compute stream as an opaque handle (a cudaStream_t on CUDA, null on the CPU).
  virtual void* nativeStream() { return nullptr; }
  // `t` itself when on the host, else a host copy.
  Tensor toHost(const Tensor& t);
};

}  // namespace sw
