// Host memory for tensors. A caching allocator: a training step allocates the same sizes every
// iteration, and returning large blocks to the OS (munmap) would cost a page fault per 4 KiB on
// the next step. Blocks are 64-byte aligned (AVX-512 lines, cache lines).
#pragma once
#include <cstddef>

namespace sw {

class HostAllocator {
 public:
  static HostAllocator& instance();
  void* allocate(size_t bytes);
  void release(void* p, size_t bytes);
  // Returns every cached block to the OS.
  void trim();
  size_t cachedBytes() const;
  size_t liveBytes() const;
  size_t peakLiveBytes() const;
  // Restarts the peak from the bytes live now (a phase's own peak).
  void resetPeak();

 private:
  HostAllocator() = default;
};

}  // namespace sw
