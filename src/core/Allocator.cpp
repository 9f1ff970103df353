// Exact-size caching host allocator (see Allocator.h for why).
#include "core/Allocator.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace sw {
namespace {
struct Pool {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;
  size_t cached = 0, live = 0, peak = 0;
};
Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may outlive static destructors
  return *p;
}
size_t roundUp(size_t b) { return (b + 63) & ~size_t(63); }
}  // namespace

HostAllocator& HostAllocator::instance() {
  static HostAllocator a;
  return a;
}

void* HostAllocator::allocate(size_t bytes) {
  size_t b = roundUp(bytes ? bytes : 64);
  Pool& p = pool();
  {
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.free.find(b);
    if (it != p.free.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      p.cached -= b;
      p.live += b;
      if (p.live > p.peak) p.peak = p.live;
      return ptr;
    }
  }
  void* ptr = std::aligned_alloc(64, b);
  if (!ptr) throw std::bad_alloc();
  std::lock_guard<std::mutex> lock(p.mu);
  p.live += b;
  if (p.live > p.peak) p.peak = p.live;
  return ptr;
}

void HostAllocator::release(void* ptr, size_t bytes) {
  if (!ptr) return;
  size_t b = roundUp(bytes ? bytes : 64);
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  p.free[b].push_back(ptr);
  p.cached += b;
  p.live -= b;
}

void HostAllocator::trim() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  for (auto& [sz, v] : p.free)
    for (void* ptr : v) std::free(ptr);
  p.free.clear();
  p.cached = 0;
}

size_t HostAllocator::cachedBytes() const { return pool().cached; }
size_t HostAllocator::liveBytes() const { return pool().live; }
size_t HostAllocator::peakLiveBytes() const { return pool().peak; }

void HostAllocator::resetPeak() {
  Pool& p = pool();
  std::lock_guard<std::mutex> lock(p.mu);
  p.peak = p.live;
}

}  // namespace sw
