// Device: where a tensor's storage lives. CPU always; CUDA when built with SW_WITH_CUDA.
#pragma once
#include <string>

namespace sw {

enum class DeviceType { kCpu, kCuda };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i) { return {DeviceType::kCuda, i}; }
  bool isCpu() const { return type == DeviceType::kCpu; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  std::string str() const { return isCpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

}  // namespace sw
