// Datasets held in host memory: 8-bit pixels (IDX, CIFAR, most HDF5 files) or float32 (HDF5 with
// float images, synthetic), with int32 labels. Loaders validate magic numbers, sizes and label
// ranges and throw DataError naming the file and what was expected.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/Shape.h"

namespace sw {

struct Dataset {
  std::string source;        // file or directory it came from ("synthetic" for generated data)
  Shape sample;              // per-sample shape (C, H, W)
  int64_t classes = 0;
  std::vector<uint8_t> u8;   // N*C*H*W pixels when the source is 8-bit (value / 255 on use)
  std::vector<float> f32;    // N*C*H*W values when the source is float
  std::vector<int32_t> labels;
  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  bool isU8() const { return !u8.empty(); }
  // Value of element j of sample i as float (u8 scaled to [0, 1]).
  float at(int64_t i, int64_t j) const {
    const int64_t k = i * sample.numel() + j;
    return isU8() ? u8[k] * (1.f / 255.f) : f32[k];
  }
};

struct DataSpec {
  // fashion_mnist | mnist | cifar10 | hdf5 | synthetic
  std::string name = "fashion_mnist";
  // Directory holding the standard files (IDX: train-images-idx3-ubyte[.gz] ...; CIFAR-10:
  // data_batch_1..5.bin, test_batch.bin). Empty: the default location for the data set
  // (/usr/share/datasets/fashion-mnist for fashion_mnist).
  std::string dir;
  // hdf5: train and test files, each with datasets `images` [N,C,H,W] (or [N,H,W,C] with
  // layout=nhwc attribute) and `labels` [N].
  std::string trainFile, testFile;
  std::string imagesKey = "images", labelsKey = "labels";
  // Use only the first N samples (0 = all).
  int64_t limitTrain = 0, limitTest = 0;
  // synthetic: a learnable generated task (class-dependent patterns plus noise).
  int64_t syntheticTrain = 1024, syntheticTest = 256;
  std::vector<int64_t> syntheticShape{1, 28, 28};
  int64_t syntheticClasses = 10;
  uint64_t seed = 0;
};

struct DataSplits {
  Dataset train, test;
};

// Loads both splits; throws DataError (missing file, wrong magic, truncated, labels out of
// range, empty) naming the file.
DataSplits loadData(const DataSpec& spec);

// Individual loaders (also used by tests and tools).
Dataset loadIdx(const std::string& imagesPath, const std::string& labelsPath, int64_t limit = 0);
Dataset loadCifar10(const std::vector<std::string>& batchFiles, int64_t limit = 0);
Dataset loadHdf5(const std::string& path, const std::string& imagesKey = "images",
                 const std::string& labelsKey = "labels", int64_t limit = 0);
Dataset makeSynthetic(int64_t n, const Shape& sample, int64_t classes, uint64_t seed);

}  // namespace sw
