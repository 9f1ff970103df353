// Caching device allocator. cudaMalloc/cudaFree synchronise the whole device and cost tens of
// microseconds each; a training step allocates the same sizes every iteration, so freed blocks
// go to per-size free lists (bins) and are handed out again. Installed as the Tensor device
// allocator (setDeviceAllocator); a Storage's deleter returns its block to the cache.
//
// Stream safety: every kernel of a backend runs on its one compute stream, so a block freed on
// the host and reused by a later launch is ordered after every earlier use of it. Work on other
// streams (NCCL) keeps its tensors alive until the compute stream has waited for it.
#pragma once
#include <cstddef>
#include <memory>

#include "core/Tensor.h"

namespace sw {

class DeviceAllocator {
 public:
  // One cache per device; never destroyed (tensors may outlive static destructors).
  static DeviceAllocator& forDevice(int device);
  std::shared_ptr<Storage> allocate(size_t bytes);
  // Frees every cached (unused) block of this device.
  void trim();
  size_t cachedBytes() const;
  size_t liveBytes() const;
  size_t peakLiveBytes() const;
  // The bin a request of `bytes` is served from: 512-byte steps below 1 MiB, then steps of an
  // eighth of the size's power of two (at most 12.5% waste, few distinct bins).
  static size_t binSize(size_t bytes);

 private:
  explicit DeviceAllocator(int device);
  void release(void* p, size_t bin);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int device_;
};

// Installs DeviceAllocator as the Tensor device allocator (idempotent).
void installDeviceAllocator();

}  // namespace sw
