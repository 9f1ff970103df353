// loadData: maps DataSpec::name to the file layout of each data set and the loader that reads it,
// then checks that both splits are non-empty.
#include <algorithm>
#include <filesystem>

#include "core/Error.h"
#include "data/Dataset.h"

namespace sw {
namespace {
namespace fs = std::filesystem;

constexpr const char* kValidNames = "fashion_mnist, mnist, cifar10, hdf5, synthetic";
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

void requireDir(const std::string& dir, const std::string& name) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw DataError(dir + ": no such directory for data set '" + name + "' (set data.dir)");
}

// The IDX file `base` as distributed (gzipped) or already unpacked.
std::string idxFile(const std::string& dir, const std::string& base) {
  for (const std::string& cand : {base, base + ".gz"}) {
    const fs::path p = fs::path(dir) / cand;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  throw DataError(dir + ": missing " + base + " (or " + base + ".gz)");
}

DataSplits loadIdxDir(const DataSpec& spec, const std::string& dir) {
  requireDir(dir, spec.name);
  DataSplits s;
  s.train = loadIdx(idxFile(dir, "train-images-idx3-ubyte"), idxFile(dir, "train-labels-idx1-ubyte"),
                    spec.limitTrain);
  s.test = loadIdx(idxFile(dir, "t10k-images-idx3-ubyte"), idxFile(dir, "t10k-labels-idx1-ubyte"),
                   spec.limitTest);
  return s;
}

DataSplits loadCifarDir(const DataSpec& spec) {
  if (spec.dir.empty())
    throw ConfigError("data.name = cifar10 needs data.dir (the folder with data_batch_1.bin .. test_batch.bin)");
  requireDir(spec.dir, spec.name);
  // The official archive unpacks into cifar-10-batches-bin/; accept its parent too.
  fs::path dir = spec.dir;
  std::error_code ec;
  if (!fs::exists(dir / "data_batch_1.bin", ec) && fs::is_directory(dir / "cifar-10-batches-bin", ec))
    dir /= "cifar-10-batches-bin";
  auto need = [&](const std::string& name) {
    const fs::path p = dir / name;
    if (!fs::is_regular_file(p, ec))
      throw DataError(dir.string() + ": missing CIFAR-10 binary batch " + name +
                      " (download cifar-10-binary.tar.gz, not the python version)");
    return p.string();
  };
  std::vector<std::string> train;
  for (int i = 1; i <= 5; ++i) train.push_back(need("data_batch_" + std::to_string(i) + ".bin"));
  DataSplits s;
  s.train = loadCifar10(train, spec.limitTrain);
  s.test = loadCifar10({need("test_batch.bin")}, spec.limitTest);
  return s;
}

int64_t limited(int64_t n, int64_t limit) { return limit > 0 ? std::min(n, limit) : n; }

}  // namespace

DataSplits loadData(const DataSpec& spec) {
  DataSplits s;
  if (spec.name == "fashion_mnist") {
    s = loadIdxDir(spec, spec.dir.empty() ? kFashionMnistDir : spec.dir);
  } else if (spec.name == "mnist") {
    if (spec.dir.empty())
      throw ConfigError("data.name = mnist needs data.dir (the folder with train-images-idx3-ubyte[.gz] ...)");
    s = loadIdxDir(spec, spec.dir);
  } else if (spec.name == "cifar10") {
    s = loadCifarDir(spec);
  } else if (spec.name == "hdf5") {
    if (spec.trainFile.empty() || spec.testFile.empty())
      throw ConfigError("data.name = hdf5 needs data.train_file and data.test_file");
    s.train = loadHdf5(spec.trainFile, spec.imagesKey, spec.labelsKey, spec.limitTrain);
    s.test = loadHdf5(spec.testFile, spec.imagesKey, spec.labelsKey, spec.limitTest);
  } else if (spec.name == "synthetic") {
    const Shape shape(spec.syntheticShape);
    s.train = makeSynthetic(limited(spec.syntheticTrain, spec.limitTrain), shape, spec.syntheticClasses, spec.seed);
    s.test = makeSynthetic(limited(spec.syntheticTest, spec.limitTest), shape, spec.syntheticClasses, spec.seed + 1);
  } else {
    throw ConfigError("data.name = '" + spec.name + "' is not a known data set; valid names: " + kValidNames);
  }
  if (s.train.size() == 0) throw DataError(s.train.source + ": the training split is empty");
  if (s.test.size() == 0) throw DataError(s.test.source + ": the test split is empty");
  return s;
}

}  // namespace sw
