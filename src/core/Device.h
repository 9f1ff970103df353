// Device: where a tensor's storage lives. CPU always; CUDA when built with SW_WITH_CUDA.
#pragma once
#include <string>

namespace sw {

// kStagingTest: host memory that all code must treat as device memory (the staging test backend,
// makeStagingTestBackend): exercises every host <-> device step of the trainers without a GPU.
enum class DeviceType { kCpu, kCuda, kStagingTest };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;
  static Device cpu() { return {}; }
  static Device cuda(int i) { return {DeviceType::kCuda, i}; }
  static Device stagingTest() { return {DeviceType::kStagingTest, 0}; }
  bool isCpu() const { return type == DeviceType::kCpu; }
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  std::string str() const {
    if (type == DeviceType::kStagingTest) return "staging-test";
    return isCpu() ? "cpu" : "cuda:" + std::to_string(index);
  }
};

}  // namespace sw
