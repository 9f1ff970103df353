// The model zoo: networks built from a ModelSpec as a list of blocks (the unit of stage
// partitioning). Layer lists follow ../shared/spec: lenet (Parle's LeNet, BN + dropout),
// simple_vgg (DTP), allcnn (All-CNN-C, Parle), resnet18/34 (CIFAR stem), wrn (Parle's wide ResNet
// WRN-depth-width; wrn16_4 and wrn28_10 fix both), mlp.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/Model.h"

namespace sw {

struct ModelSpec {
  std::string name = "lenet";
  std::vector<int64_t> hidden{1024, 1024};  // mlp hidden sizes
  float dropout = -1.f;                     // < 0: the model's published default
  float inputDropout = -1.f;                // allcnn's first dropout; < 0: default 0.2
  bool batchnorm = true;                    // lenet / mlp: BN after each hidden layer
  int64_t width = 0;                        // 0: default channel widths (wrn: widen factor k)
  int64_t depth = 0;                        // wrn: depth 6N + 4 (0: 28)
};

// Builds `spec` for per-sample input `sample` (C,H,W) and `classes` outputs; throws ConfigError
// for an unknown name or an input the network cannot take.
std::unique_ptr<Model> buildModel(Backend& be, const ModelSpec& spec, const Shape& sample,
                                  int64_t classes, uint64_t seed);
std::vector<std::string> modelNames();

}  // namespace sw
