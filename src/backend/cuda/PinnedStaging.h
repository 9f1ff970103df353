// PinnedStaging: page-locked host blocks through which CudaBackend moves data between host
// tensors and the device on its compute stream. From pageable memory cudaMemcpyAsync is not
// asynchronous (the driver copies through its own staging buffer before returning and cannot
// overlap the transfer with the host); from pinned memory the DMA is queued and the host goes on.
//
// upload() copies the host data into a free block at once (so the caller may reuse its buffer
// as soon as it returns), queues the block -> device copy on the stream and records an event
// behind it. A block is free again when its event has completed; blocks are reused, grown and
// added as needed up to a byte limit, past which the oldest pending copies are waited for.
// download() queues device -> block, waits for that copy alone (the stream's earlier work comes
// first by stream order) and copies the block into the caller's buffer.
//
// Not thread-safe: one instance belongs to one backend and its stream.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

namespace sw {

class PinnedStaging {
 public:
  PinnedStaging(cudaStream_t stream, size_t maxBytes);
  ~PinnedStaging();
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // Host -> device (dst on the device). Transfers larger than the limit go straight from the
  // caller's pageable memory.
  void upload(void* dst, const void* src, size_t bytes);
  // Device -> host (src on the device); returns with dst filled.
  void download(void* dst, const void* src, size_t bytes);

  size_t pinnedBytes() const { return total_; }  // held now, in all blocks
  size_t blocks() const { return blocks_.size(); }

 private:
  struct Block {
    char* host = nullptr;
    size_t bytes = 0;
    cudaEvent_t done = nullptr;  // recorded after the block's last copy
  };
  // A block of at least `bytes` whose last copy has finished.
  Block& acquire(size_t bytes);
  bool idle(const Block& b) const;
  void allocate(Block& b, size_t bytes);
  void release(Block& b);

  cudaStream_t stream_;
  size_t max_;
  size_t total_ = 0;
  std::vector<Block> blocks_;
};

}  // namespace sw
