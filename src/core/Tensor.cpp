// Tensor construction and host-side helpers.
#include "core/Tensor.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "core/Allocator.h"
#include "core/Error.h"

namespace sw {
namespace {
DeviceAllocFn g_device_alloc = nullptr;
}

void setDeviceAllocator(DeviceAllocFn fn) { g_device_alloc = fn; }

Tensor Tensor::empty(const Shape& s, Device dev) {
  size_t bytes = static_cast<size_t>(s.numel()) * sizeof(float);
  if (!dev.isCpu()) {
    if (!g_device_alloc) throw DeviceError("no device allocator: built without CUDA or no GPU");
    return Tensor(g_device_alloc(bytes, dev), s);
  }
  auto st = std::make_shared<Storage>();
  st->ptr = HostAllocator::instance().allocate(bytes);
  st->bytes = bytes;
  st->device = dev;
  st->deleter = [](void* p, size_t b) { HostAllocator::instance().release(p, b); };
  return Tensor(std::move(st), s);
}

Tensor Tensor::zeros(const Shape& s, Device dev) {
  SW_CHECK(dev.isCpu(), "Tensor::zeros on device: use Backend::zeros");
  Tensor t = empty(s, dev);
  std::memset(t.data(), 0, t.bytes());
  return t;
}

Tensor Tensor::full(const Shape& s, float v) {
  Tensor t = empty(s);
  t.fill(v);
  return t;
}

Tensor Tensor::reshape(const Shape& s) const {
  if (s.numel() != numel())
    throw ShapeError("reshape " + shape_.str() + " -> " + s.str() + ": element count differs");
  return Tensor(storage_, s, offset_);
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  SW_CHECK(rank() >= 1 && begin >= 0 && end <= shape_[0] && begin <= end, "bad slice");
  Shape s = shape_.withBatch(end - begin);
  return Tensor(storage_, s, offset_ + begin * shape_.perSample());
}

Tensor Tensor::clone() const {
  SW_CHECK(device().isCpu(), "Tensor::clone is host-only; use Backend::copy");
  Tensor t = empty(shape_);
  if (numel()) std::memcpy(t.data(), data(), bytes());
  return t;
}

void Tensor::fill(float v) {
  SW_CHECK(device().isCpu(), "Tensor::fill is host-only");
  std::fill(data(), data() + numel(), v);
}

std::string Tensor::str(int maxElems) const {
  std::ostringstream os;
  os << "Tensor" << shape_.str() << " " << device().str();
  if (device().isCpu() && defined()) {
    os << " {";
    for (int64_t i = 0; i < std::min<int64_t>(numel(), maxElems); ++i) os << (i ? ", " : "") << data()[i];
    if (numel() > maxElems) os << ", ...";
    os << "}";
  }
  return os.str();
}

}  // namespace sw
