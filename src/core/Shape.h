// Shape: the dimensions of a Tensor (NCHW for images, [N, F] for features).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace sw {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> d) : dims_(d) {}
  explicit Shape(std::vector<int64_t> d) : dims_(std::move(d)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t operator[](int i) const { return dims_[i < 0 ? i + rank() : i]; }
  int64_t& operator[](int i) { return dims_[i < 0 ? i + rank() : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }
  // Elements per sample: product of all dimensions but the first.
  int64_t perSample() const { return rank() == 0 ? 1 : numel() / (dims_[0] ? dims_[0] : 1); }
  const std::vector<int64_t>& dims() const { return dims_; }
  bool operator==(const Shape& o) const { return dims_ == o.dims_; }
  bool operator!=(const Shape& o) const { return dims_ != o.dims_; }
  std::string str() const {
    std::string s = "[";
    for (size_t i = 0; i < dims_.size(); ++i) {
      if (i) s += ',';
      s += std::to_string(dims_[i]);
    }
    s += ']';
    return s;
  }
  // Same shape with the batch dimension replaced.
  Shape withBatch(int64_t n) const {
    Shape s = *this;
    if (!s.dims_.empty()) s.dims_[0] = n;
    return s;
  }

 private:
  std::vector<int64_t> dims_;
};

}  // namespace sw
