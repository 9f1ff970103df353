// Caching device allocator (see DeviceAllocator.h).
#include "backend/cuda/DeviceAllocator.h"

#include <cuda_runtime.h>

#include <mutex>
#include <unordered_map>
#include <vector>

#include "backend/cuda/CudaCheck.h"

namespace sw {

struct DeviceAllocator::Impl {
  mutable std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;
  size_t cached = 0, live = 0, peak = 0;
};

namespace {
// Makes `device` current for the scope (allocations land on the tensor's device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    SW_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != device) SW_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(prev_); }

 private:
  int prev_ = 0;
};
}  // namespace

DeviceAllocator::DeviceAllocator(int device) : impl_(std::make_unique<Impl>()), device_(device) {}

DeviceAllocator& DeviceAllocator::forDevice(int device) {
  static std::mutex mu;
  static auto* all = new std::unordered_map<int, DeviceAllocator*>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = all->find(device);
  if (it == all->end()) it = all->emplace(device, new DeviceAllocator(device)).first;
  return *it->second;
}

size_t DeviceAllocator::binSize(size_t bytes) {
  if (bytes == 0) bytes = 1;
  constexpr size_t kSmall = size_t(1) << 20;
  if (bytes < kSmall) return (bytes + 511) & ~size_t(511);
  size_t pow2 = kSmall;
  while (pow2 * 2 <= bytes) pow2 *= 2;
  const size_t step = pow2 / 8;
  return (bytes + step - 1) / step * step;
}

std::shared_ptr<Storage> DeviceAllocator::allocate(size_t bytes) {
  const size_t bin = binSize(bytes);
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->free.find(bin);
    if (it != impl_->free.end() && !it->second.empty()) {
      ptr = it->second.back();
      it->second.pop_back();
      impl_->cached -= bin;
    }
  }
  if (!ptr) {
    DeviceGuard guard(device_);
    cudaError_t e = cudaMalloc(&ptr, bin);
    if (e == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear, give the cache back to the driver, try once more
      trim();
      e = cudaMalloc(&ptr, bin);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw DeviceError("cudaMalloc of " + std::to_string(bin) + " bytes on cuda:" +
                        std::to_string(device_) + " failed (" + cudaGetErrorString(e) + "); " +
                        std::to_string(liveBytes()) + " bytes live in tensors");
    }
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->live += bin;
    if (impl_->live > impl_->peak) impl_->peak = impl_->live;
  }
  auto st = std::make_shared<Storage>();
  st->ptr = ptr;
  st->bytes = bytes;
  st->device = Device::cuda(device_);
  st->deleter = [this, bin](void* p, size_t) { release(p, bin); };
  return st;
}

void DeviceAllocator::release(void* p, size_t bin) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->free[bin].push_back(p);
  impl_->cached += bin;
  impl_->live -= bin;
}

void DeviceAllocator::trim() {
  std::vector<void*> blocks;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (auto& [bin, v] : impl_->free) blocks.insert(blocks.end(), v.begin(), v.end());
    impl_->free.clear();
    impl_->cached = 0;
  }
  if (blocks.empty()) return;
  DeviceGuard guard(device_);
  for (void* p : blocks) cudaFree(p);  // cudaFree synchronises the device: no block is in use
}

size_t DeviceAllocator::cachedBytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->cached;
}
size_t DeviceAllocator::liveBytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->live;
}
size_t DeviceAllocator::peakLiveBytes() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->peak;
}

namespace {
std::shared_ptr<Storage> allocateOnDevice(size_t bytes, Device dev) {
  if (dev.isCpu()) throw DeviceError("device allocator asked for host memory");
  return DeviceAllocator::forDevice(dev.index).allocate(bytes);
}
}  // namespace

void installDeviceAllocator() { setDeviceAllocator(&allocateOnDevice); }

}  // namespace sw
