// Tensor: a value type of shape + device + shared float32 storage. No autograd graph: layers
// compute their own backward. Copies share storage; clone() copies data. Contiguous row-major.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/Device.h"
#include "core/Shape.h"

namespace sw {

enum class DType { kF32 };

// Raw storage. The deleter returns memory to the owning allocator (host cache or device cache).
struct Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  Device device;
  std::function<void(void*, size_t)> deleter;
  ~Storage() {
    if (deleter) deleter(ptr, bytes);
  }
};

// Device allocation hook, installed by the CUDA backend when present (keeps core CUDA-free).
using DeviceAllocFn = std::shared_ptr<Storage> (*)(size_t bytes, Device dev);
void setDeviceAllocator(DeviceAllocFn fn);

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised storage on `dev`.
  static Tensor empty(const Shape& s, Device dev = Device::cpu());
  static Tensor zeros(const Shape& s, Device dev = Device::cpu());
  static Tensor full(const Shape& s, float v);  // host only
  // Wraps existing storage (shares it) at an element offset.
  Tensor(std::shared_ptr<Storage> st, const Shape& s, int64_t offset = 0)
      : storage_(std::move(st)), shape_(s), offset_(offset) {}

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_.numel(); }
  int64_t dim(int i) const { return shape_[i]; }
  int rank() const { return shape_.rank(); }
  DType dtype() const { return DType::kF32; }
  Device device() const { return storage_ ? storage_->device : Device::cpu(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * sizeof(float); }

  float* data() { return static_cast<float*>(storage_->ptr) + offset_; }
  const float* data() const { return static_cast<const float*>(storage_->ptr) + offset_; }
  template <class T>
  T* data() {
    return reinterpret_cast<T*>(data());
  }
  template <class T>
  const T* data() const {
    return reinterpret_cast<const T*>(data());
  }

  // Same storage, new shape (numel must match).
  Tensor reshape(const Shape& s) const;
  // Rows [begin, end) along dimension 0, sharing storage.
  Tensor slice(int64_t begin, int64_t end) const;
  // Deep copy on the same device (host-only here; device copies go through the backend).
  Tensor clone() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  // Host-only helpers for tests and I/O.
  float item() const { return *data(); }
  void fill(float v);
  std::string str(int maxElems = 8) const;

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  int64_t offset_ = 0;
};

}  // namespace sw
