// PinnedStaging (see PinnedStaging.h).
#include "backend/cuda/PinnedStaging.h"

#include <algorithm>
#include <cstring>

#include "backend/cuda/CudaCheck.h"

namespace sw {
namespace {
// Block sizes are powers of two from 64 KiB: few distinct sizes, so blocks are reused across the
// slightly different transfers of a run (last, shorter batch; labels beside images).
size_t blockSize(size_t bytes) {
  size_t s = size_t(1) << 16;
  while (s < bytes) s <<= 1;
  return s;
}
}  // namespace

PinnedStaging::PinnedStaging(cudaStream_t stream, size_t maxBytes) : stream_(stream), max_(maxBytes) {}

PinnedStaging::~PinnedStaging() {
  // Queued copies may still read or write the blocks; nothing can be thrown from here.
  for (Block& b : blocks_)
    if (b.done) cudaEventSynchronize(b.done);
  for (Block& b : blocks_) {
    if (b.host) cudaFreeHost(b.host);
    if (b.done) cudaEventDestroy(b.done);
  }
}

bool PinnedStaging::idle(const Block& b) const {
  const cudaError_t e = cudaEventQuery(b.done);  // an event never recorded counts as complete
  if (e == cudaErrorNotReady) return false;
  SW_CUDA_CHECK(e);
  return true;
}

void PinnedStaging::allocate(Block& b, size_t bytes) {
  void* p = nullptr;
  SW_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
  b.host = static_cast<char*>(p);
  b.bytes = bytes;
  total_ += bytes;
  if (!b.done) SW_CUDA_CHECK(cudaEventCreateWithFlags(&b.done, cudaEventDisableTiming));
}

void PinnedStaging::release(Block& b) {
  if (b.host) SW_CUDA_CHECK(cudaFreeHost(b.host));
  total_ -= b.bytes;
  b.host = nullptr;
  b.bytes = 0;
}

PinnedStaging::Block& PinnedStaging::acquire(size_t bytes) {
  const size_t want = blockSize(bytes);
  // The smallest idle block that fits.
  Block* best = nullptr;
  for (Block& b : blocks_)
    if (b.bytes >= bytes && (!best || b.bytes < best->bytes) && idle(b)) best = &b;
  if (best) return *best;
  if (total_ + want > max_) {
    // Over the limit: wait for every pending copy, then drop idle blocks too small to serve
    // this size, smallest first, until the new block fits. Rare: only when sizes keep growing.
    SW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    for (Block& b : blocks_)
      if (b.bytes >= bytes) return b;
    std::sort(blocks_.begin(), blocks_.end(), [](const Block& a, const Block& b) { return a.bytes < b.bytes; });
    for (Block& b : blocks_)
      if (total_ + want > max_ && b.host) release(b);
    blocks_.erase(std::remove_if(blocks_.begin(), blocks_.end(),
                                 [](Block& b) {
                                   if (b.host) return false;
                                   if (b.done) cudaEventDestroy(b.done);
                                   return true;
                                 }),
                  blocks_.end());
  }
  blocks_.emplace_back();
  allocate(blocks_.back(), want);
  return blocks_.back();
}

void PinnedStaging::upload(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (blockSize(bytes) > max_) {
    SW_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    return;
  }
  Block& b = acquire(bytes);
  std::memcpy(b.host, src, bytes);
  SW_CUDA_CHECK(cudaMemcpyAsync(dst, b.host, bytes, cudaMemcpyHostToDevice, stream_));
  SW_CUDA_CHECK(cudaEventRecord(b.done, stream_));
}

void PinnedStaging::download(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (blockSize(bytes) > max_) {
    SW_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    SW_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return;
  }
  Block& b = acquire(bytes);
  SW_CUDA_CHECK(cudaMemcpyAsync(b.host, src, bytes, cudaMemcpyDeviceToHost, stream_));
  SW_CUDA_CHECK(cudaEventRecord(b.done, stream_));
  SW_CUDA_CHECK(cudaEventSynchronize(b.done));
  std::memcpy(dst, b.host, bytes);
}

}  // namespace sw
