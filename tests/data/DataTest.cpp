// Data module: IDX/CIFAR/HDF5 loaders on small generated files (good and damaged), loadData
// dispatch, the synthetic task, and BatchLoader order, sharding, seeking, augmentation and
// normalisation.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>

#include "core/Error.h"
#include "data/Dataset.h"
#include "data/Loader.h"
#include "io/H5.h"

namespace sw {
namespace {
namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("sw_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

void writeBytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gz) {
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), int(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

void putBe32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(static_cast<uint8_t>(x >> s));
}

std::vector<uint8_t> idxImages(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                               const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> v;
  putBe32(v, magic);
  putBe32(v, n);
  putBe32(v, rows);
  putBe32(v, cols);
  v.insert(v.end(), pixels.begin(), pixels.end());
  return v;
}

std::vector<uint8_t> idxLabels(uint32_t magic, uint32_t n, const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> v;
  putBe32(v, magic);
  putBe32(v, n);
  v.insert(v.end(), labels.begin(), labels.end());
  return v;
}

std::vector<uint8_t> iota8(size_t n, int start = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + i);
  return v;
}

// Expects a DataError whose message names `needle` (usually the file).
void expectDataError(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no DataError thrown (expected one naming " << needle << ")";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// 3 images of 2x3 with pixel value = 10 * image + position; labels 1, 9, 0.
void writeMnistLike(const TempDir& d, const std::string& prefix, bool gz) {
  std::vector<uint8_t> px;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 6; ++j) px.push_back(static_cast<uint8_t>(10 * i + j));
  const std::string sfx = gz ? ".gz" : "";
  writeBytes(d / (prefix + "-images-idx3-ubyte" + sfx), idxImages(0x803, 3, 2, 3, px), gz);
  writeBytes(d / (prefix + "-labels-idx1-ubyte" + sfx), idxLabels(0x801, 3, {1, 9, 0}), gz);
}

}  // namespace

// ---------------------------------------------------------------- IDX

TEST(DataIdx, LoadsRawAndGzipped) {
  TempDir d;
  for (bool gz : {false, true}) {
    writeMnistLike(d, gz ? "gz" : "raw", gz);
    const std::string sfx = gz ? ".gz" : "";
    const std::string p = gz ? "gz" : "raw";
    Dataset ds = loadIdx(d / (p + "-images-idx3-ubyte" + sfx), d / (p + "-labels-idx1-ubyte" + sfx));
    EXPECT_EQ(ds.size(), 3);
    EXPECT_EQ(ds.sample, (Shape{1, 2, 3}));
    EXPECT_EQ(ds.classes, 10);
    EXPECT_TRUE(ds.isU8());
    EXPECT_EQ(ds.labels, (std::vector<int32_t>{1, 9, 0}));
    EXPECT_EQ(ds.u8[6 + 4], 14);
    EXPECT_FLOAT_EQ(ds.at(2, 5), 25.f / 255.f);

    Dataset lim = loadIdx(d / (p + "-images-idx3-ubyte" + sfx), d / (p + "-labels-idx1-ubyte" + sfx), 2);
    EXPECT_EQ(lim.size(), 2);
    EXPECT_EQ(lim.u8.size(), 12u);
  }
}

TEST(DataIdx, RejectsDamagedFiles) {
  TempDir d;
  const std::string good = d / "good-images", labels = d / "good-labels";
  writeBytes(good, idxImages(0x803, 3, 2, 3, iota8(18)), false);
  writeBytes(labels, idxLabels(0x801, 3, {0, 1, 2}), false);
  ASSERT_EQ(loadIdx(good, labels).size(), 3);

  const std::string trunc = d / "trunc-images";
  writeBytes(trunc, idxImages(0x803, 3, 2, 3, iota8(15)), true);
  expectDataError([&] { loadIdx(trunc, labels); }, trunc);

  const std::string magic = d / "magic-images";
  writeBytes(magic, idxImages(0x804, 3, 2, 3, iota8(18)), false);
  expectDataError([&] { loadIdx(magic, labels); }, magic);
  // Swapped arguments are caught by the magic numbers.
  expectDataError([&] { loadIdx(labels, good); }, labels);

  const std::string range = d / "range-labels";
  writeBytes(range, idxLabels(0x801, 3, {0, 10, 2}), false);
  expectDataError([&] { loadIdx(good, range); }, range);

  const std::string count = d / "count-labels";
  writeBytes(count, idxLabels(0x801, 2, {0, 1}), false);
  expectDataError([&] { loadIdx(good, count); }, count);

  const std::string truncLabels = d / "trunc-labels";
  writeBytes(truncLabels, idxLabels(0x801, 3, {0, 1}), false);
  expectDataError([&] { loadIdx(good, truncLabels); }, truncLabels);

  expectDataError([&] { loadIdx(d / "missing", labels); }, d / "missing");
}

// Fuzzing (tools/fuzz/fuzz_idx): a 16-byte header claiming 2^28 images of 4096x4096 made the reader
// allocate 2^52 bytes before reading any. It now fails as truncated, naming the file, after
// reading what is there.
TEST(DataIdx, HeaderClaimingMoreThanTheFileHoldsIsTruncatedNotAllocated) {
  TempDir d;
  const std::string images = d / "huge-images", labels = d / "huge-labels";
  writeBytes(images, idxImages(0x803, 1u << 28, 4096, 4096, iota8(100)), false);
  writeBytes(labels, idxLabels(0x801, 1u << 28, {1, 2, 3}), false);
  expectDataError([&] { loadIdx(images, labels); }, images);
  try {
    loadIdx(images, labels);
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("truncated IDX file: expected 4503599627370496 bytes of pixels, found 100"),
              std::string::npos)
        << e.what();
  }
  // The same for the labels, and gzipped.
  const std::string small = d / "small-images.gz";
  writeBytes(small, idxImages(0x803, 0x7fffffff, 1, 1, iota8(3)), true);
  writeBytes(labels, idxLabels(0x801, 0x7fffffff, {1, 2, 3}), true);
  expectDataError([&] { loadIdx(small, labels); }, small);
}

// ---------------------------------------------------------------- CIFAR-10

TEST(DataCifar, LoadsBatchesInChwOrder) {
  TempDir d;
  auto batch = [](std::vector<uint8_t> labels) {
    std::vector<uint8_t> v;
    for (uint8_t l : labels) {
      v.push_back(l);
      for (int j = 0; j < 3072; ++j) v.push_back(static_cast<uint8_t>((j / 1024) * 100 + l));
    }
    return v;
  };
  writeBytes(d / "a.bin", batch({3, 7}), false);
  writeBytes(d / "b.bin", batch({9}), false);
  Dataset ds = loadCifar10({d / "a.bin", d / "b.bin"});
  EXPECT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.sample, (Shape{3, 32, 32}));
  EXPECT_EQ(ds.classes, 10);
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{3, 7, 9}));
  // Sample 1, channel 2 (blue plane), any pixel: 200 + label.
  EXPECT_EQ(ds.u8[1 * 3072 + 2 * 1024 + 17], 207);
  EXPECT_EQ(ds.u8[2 * 3072 + 0], 9);
  EXPECT_EQ(loadCifar10({d / "a.bin", d / "b.bin"}, 2).size(), 2);

  std::vector<uint8_t> trunc = batch({1, 2});
  trunc.resize(trunc.size() - 5);
  writeBytes(d / "trunc.bin", trunc, false);
  expectDataError([&] { loadCifar10({d / "trunc.bin"}); }, d / "trunc.bin");
  writeBytes(d / "label.bin", batch({10}), false);
  expectDataError([&] { loadCifar10({d / "label.bin"}); }, d / "label.bin");
  expectDataError([&] { loadCifar10({d / "nope.bin"}); }, d / "nope.bin");
}

// ---------------------------------------------------------------- HDF5

TEST(DataHdf5, LoadsNchwNhwcFloatAndClasses) {
  TempDir d;
  {
    h5::File f(d / "nchw.h5", h5::Access::kCreate);
    f.writeUint8("images", iota8(2 * 2 * 3 * 4), {2, 2, 3, 4});
    f.writeInt64("labels", {4, 1});
    f.setAttr("/", "classes", int64_t{7});
  }
  Dataset a = loadHdf5(d / "nchw.h5");
  EXPECT_EQ(a.size(), 2);
  EXPECT_EQ(a.sample, (Shape{2, 3, 4}));
  EXPECT_EQ(a.classes, 7);
  EXPECT_EQ(a.u8, iota8(48));
  EXPECT_EQ(a.labels, (std::vector<int32_t>{4, 1}));
  EXPECT_EQ(loadHdf5(d / "nchw.h5", "images", "labels", 1).u8, iota8(24));

  {
    // Same pixels stored as [N,H,W,C]: element (n,y,x,c) = nchw(n,c,y,x).
    std::vector<uint8_t> nhwc(48);
    for (int n = 0; n < 2; ++n)
      for (int c = 0; c < 2; ++c)
        for (int y = 0; y < 3; ++y)
          for (int x = 0; x < 4; ++x) nhwc[((n * 3 + y) * 4 + x) * 2 + c] = a.u8[((n * 2 + c) * 3 + y) * 4 + x];
    h5::File f(d / "nhwc.h5", h5::Access::kCreate);
    f.writeUint8("images", nhwc, {2, 3, 4, 2});
    f.setAttr("images", "layout", std::string("nhwc"));
    f.writeInt64("labels", {4, 1});
  }
  Dataset b = loadHdf5(d / "nhwc.h5");
  EXPECT_EQ(b.sample, (Shape{2, 3, 4}));
  EXPECT_EQ(b.u8, a.u8);
  EXPECT_EQ(b.classes, 5);  // no attribute: max label + 1

  {
    Tensor t = Tensor::empty(Shape{3, 2, 2});
    for (int i = 0; i < 12; ++i) t.data()[i] = 0.5f * i;
    h5::File f(d / "float.h5", h5::Access::kCreate);
    f.writeTensor("x", t);
    f.writeInt64("y", {0, 2, 1});
  }
  Dataset c = loadHdf5(d / "float.h5", "x", "y");
  EXPECT_FALSE(c.isU8());
  EXPECT_EQ(c.sample, (Shape{1, 2, 2}));
  EXPECT_FLOAT_EQ(c.at(2, 3), 5.5f);
  EXPECT_EQ(c.classes, 3);
}

TEST(DataHdf5, RejectsBadFiles) {
  TempDir d;
  writeBytes(d / "text.h5", {'n', 'o', 't', ' ', 'h', 'd', 'f'}, false);
  expectDataError([&] { loadHdf5(d / "text.h5"); }, d / "text.h5");
  expectDataError([&] { loadHdf5(d / "missing.h5"); }, d / "missing.h5");
  {
    h5::File f(d / "nolabels.h5", h5::Access::kCreate);
    f.writeUint8("images", iota8(8), {2, 2, 2});
  }
  expectDataError([&] { loadHdf5(d / "nolabels.h5"); }, d / "nolabels.h5");
  {
    h5::File f(d / "empty.h5", h5::Access::kCreate);
    f.writeUint8("images", {}, {0, 2, 2});
    f.writeInt64("labels", {});
  }
  expectDataError([&] { loadHdf5(d / "empty.h5"); }, d / "empty.h5");
  {
    h5::File f(d / "mismatch.h5", h5::Access::kCreate);
    f.writeUint8("images", iota8(8), {2, 2, 2});
    f.writeInt64("labels", {0, 1, 1});
  }
  expectDataError([&] { loadHdf5(d / "mismatch.h5"); }, d / "mismatch.h5");
  {
    h5::File f(d / "negative.h5", h5::Access::kCreate);
    f.writeUint8("images", iota8(8), {2, 2, 2});
    f.writeInt64("labels", {0, -1});
  }
  expectDataError([&] { loadHdf5(d / "negative.h5"); }, d / "negative.h5");
  {
    h5::File f(d / "classes.h5", h5::Access::kCreate);
    f.writeUint8("images", iota8(8), {2, 2, 2});
    f.writeInt64("labels", {0, 5});
    f.setAttr("/", "classes", int64_t{5});
  }
  expectDataError([&] { loadHdf5(d / "classes.h5"); }, d / "classes.h5");
}

// Fuzzing (tools/fuzz/fuzz_hdf5) of HDF5 data sets; tests/fuzz_corpus/regressions/hdf5_*.h5 are the
// inputs it found (damaged copies of a small valid file). Each must be a DataError naming the file.
TEST(DataHdf5, FuzzedFilesAreDataErrors) {
  const std::string dir = std::string(SW_SOURCE_DIR) + "/tests/fuzz_corpus/regressions/";
  // name -> what the message says. Before the fixes: std::length_error from a member name of length -1
  // (h5::File::list); signed overflow of N*C*H*W (a dimension forged to 2^62); an allocation of 2^62
  // bytes; a read past HDF5's buffer (H5Dread -> H5VM_memcpyvv) for a dataset whose shape exceeds its
  // maximum shape, and another for chunks wider than the dataset; int32 overflow of the largest
  // label + 1. The shape checks are h5::File::storedElements, run before any buffer is sized.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hdf5_member_name.h5", "cannot read the name of member"},
      {"hdf5_shape_overflow.h5", "shape [4,1,4,5782979572060389380] beyond its maximum shape"},
      {"hdf5_huge_unstored.h5", "shape [4,1,4,288230376151711748] beyond its maximum shape"},
      {"hdf5_short_storage.h5", "shape [3,4,10,3] beyond its maximum shape"},
      {"hdf5_chunk_too_wide.h5", "has chunks [1,4,8196,3] that do not fit it"},
      {"hdf5_label_int32_max.h5", "label 2147483647 of sample 1 is out of range"},
  };
  for (const auto& [name, what] : cases) {
    const std::string path = dir + name;
    ASSERT_TRUE(fs::exists(path)) << path;
    try {
      loadHdf5(path);
      ADD_FAILURE() << name << ": no DataError";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  }
}

// The same checks on files written here: labels beyond int32 (HDF5 clips them to INT32_MAX), a
// classes attribute beyond any model, and a dataset whose storage was never written.
TEST(DataHdf5, HugeLabelsClassesAndUnwrittenDataAreDataErrors) {
  TempDir d;
  {
    h5::File f(d / "wide.h5", h5::Access::kCreate);
    f.writeUint8("images", iota8(8), {2, 2, 2});
    f.writeInt64("labels", {0, int64_t(1) << 40});
  }
  expectDataError([&] { loadHdf5(d / "wide.h5"); }, d / "wide.h5");
  {
    h5::File f(d / "classes.h5", h5::Access::kCreate);
    f.writeUint8("images", iota8(8), {2, 2, 2});
    f.writeInt64("labels", {0, 1});
    f.setAttr("/", "classes", int64_t(1) << 40);
  }
  expectDataError([&] { loadHdf5(d / "classes.h5"); }, d / "classes.h5");
  {
    // 2^40 bytes of images in chunks that were never written: nothing stored.
    h5::File f(d / "unwritten.h5", h5::Access::kCreate);
    const hsize_t dims[3] = {hsize_t(1) << 20, 1024, 1024}, chunk[3] = {1, 1024, 1024};
    h5::Handle sp(H5Screate_simple(3, dims, nullptr), H5Sclose);
    h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl.get(), 3, chunk);
    h5::Handle ds(H5Dcreate2(f.id(), "images", H5T_STD_U8LE, sp.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
    ASSERT_TRUE(ds.valid());
  }
  {
    h5::File f(d / "unwritten.h5", h5::Access::kReadWrite);
    f.writeInt64("labels", {0});  // the images are checked first
  }
  expectDataError([&] { loadHdf5(d / "unwritten.h5"); }, d / "unwritten.h5");
  try {
    loadHdf5(d / "unwritten.h5");
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("needs 1099511627776 bytes, the file stores 0"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------- loadData and synthetic

TEST(DataLoad, DispatchesAndValidates) {
  DataSpec bad;
  bad.name = "imagenet";
  try {
    loadData(bad);
    ADD_FAILURE() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("fashion_mnist"), std::string::npos) << e.what();
  }
  DataSpec mnist;
  mnist.name = "mnist";
  EXPECT_THROW(loadData(mnist), ConfigError);

  // mnist from a directory mixing plain and gzipped files.
  TempDir d;
  writeMnistLike(d, "train", true);
  writeMnistLike(d, "t10k", false);
  mnist.dir = d.str();
  mnist.limitTest = 2;
  DataSplits s = loadData(mnist);
  EXPECT_EQ(s.train.size(), 3);
  EXPECT_EQ(s.test.size(), 2);
  fs::remove(d / "t10k-labels-idx1-ubyte");
  expectDataError([&] { loadData(mnist); }, "t10k-labels-idx1-ubyte");

  DataSpec syn;
  syn.name = "synthetic";
  syn.syntheticTrain = 50;
  syn.limitTrain = 20;
  syn.syntheticShape = {3, 8, 8};
  syn.syntheticClasses = 4;
  DataSplits t = loadData(syn);
  EXPECT_EQ(t.train.size(), 20);
  EXPECT_EQ(t.test.size(), 256);
  EXPECT_EQ(t.train.sample, (Shape{3, 8, 8}));
  EXPECT_EQ(t.train.classes, 4);
}

TEST(DataSynthetic, DeterministicAndLearnable) {
  const Shape shape{1, 28, 28};
  Dataset a = makeSynthetic(400, shape, 10, 7), b = makeSynthetic(400, shape, 10, 7);
  EXPECT_EQ(a.f32, b.f32);
  EXPECT_EQ(a.labels, b.labels);
  Dataset test = makeSynthetic(400, shape, 10, 8);
  EXPECT_NE(a.f32, test.f32);
  for (float v : a.f32) ASSERT_TRUE(v >= 0.f && v <= 1.f);

  // Nearest class mean from the train split must classify the test split (same task, other seed):
  // a linear model can separate it, so a small MLP or LeNet can.
  const int64_t per = shape.numel();
  std::vector<double> mean(10 * per, 0.0);
  std::vector<int> count(10, 0);
  for (int64_t i = 0; i < a.size(); ++i) {
    ++count[a.labels[i]];
    for (int64_t j = 0; j < per; ++j) mean[a.labels[i] * per + j] += a.f32[i * per + j];
  }
  for (int k = 0; k < 10; ++k)
    for (int64_t j = 0; j < per; ++j) mean[k * per + j] /= std::max(count[k], 1);
  int correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    double best = 1e300;
    int arg = -1;
    for (int k = 0; k < 10; ++k) {
      double dist = 0;
      for (int64_t j = 0; j < per; ++j) {
        const double e = test.f32[i * per + j] - mean[k * per + j];
        dist += e * e;
      }
      if (dist < best) best = dist, arg = k;
    }
    correct += arg == test.labels[i];
  }
  EXPECT_GT(correct, 0.9 * test.size());
}

TEST(DataLoad, FashionMnistFromSystemDir) {
  if (!fs::is_directory("/usr/share/datasets/fashion-mnist"))
    GTEST_SKIP() << "/usr/share/datasets/fashion-mnist not installed";
  DataSplits s = loadData(DataSpec{});
  EXPECT_EQ(s.train.size(), 60000);
  EXPECT_EQ(s.test.size(), 10000);
  EXPECT_EQ(s.train.sample, (Shape{1, 28, 28}));
  EXPECT_EQ(s.train.labels[0], 9);
  EXPECT_EQ(s.train.classes, 10);
}

// ---------------------------------------------------------------- BatchLoader

namespace {
// n samples of [1, h, w]; sample i has label i and pixel values i (as float).
Dataset indexed(int64_t n, int64_t h = 1, int64_t w = 1) {
  Dataset d;
  d.source = "indexed";
  d.sample = Shape{1, h, w};
  d.classes = n;
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i));
    for (int64_t j = 0; j < h * w; ++j) d.f32.push_back(float(i));
  }
  return d;
}

// Labels of every batch of one epoch, in order.
std::vector<int32_t> epochLabels(BatchLoader& l, int epoch) {
  l.seek(epoch, 0);
  std::vector<int32_t> out;
  Batch b;
  while (l.next(b)) out.insert(out.end(), b.labels.data<int32_t>(), b.labels.data<int32_t>() + b.size());
  return out;
}

BatchLoader make(const Dataset& d, int64_t batch, Shard shard = {}, AugmentSpec aug = {},
                 Shuffle sh = Shuffle::kYes, DropLast dl = DropLast::kNo, Augment au = Augment::kNo,
                 uint64_t seed = 5) {
  return BatchLoader(d, batch, seed, shard, std::move(aug), sh, dl, au);
}
}  // namespace

TEST(BatchLoader, PermutationDependsOnSeedAndEpochOnly) {
  Dataset d = indexed(100);
  BatchLoader a = make(d, 7), b = make(d, 13);
  const std::vector<int32_t> e0 = epochLabels(a, 0), e1 = epochLabels(a, 1);
  EXPECT_EQ(e0, epochLabels(b, 0));  // batch size does not change the order
  EXPECT_NE(e0, e1);
  std::vector<int32_t> sorted = e0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int32_t> all(100);
  std::iota(all.begin(), all.end(), 0);
  EXPECT_EQ(sorted, all);
  EXPECT_EQ(epochLabels(a, 0), e0);  // revisiting an epoch reproduces it
  BatchLoader other = make(d, 7, {}, {}, Shuffle::kYes, DropLast::kNo, Augment::kNo, 6);
  EXPECT_NE(epochLabels(other, 0), e0);
  BatchLoader plain = make(d, 7, {}, {}, Shuffle::kNo);
  EXPECT_EQ(epochLabels(plain, 3), all);
}

TEST(BatchLoader, ShardsAreDisjointEqualAndStrided) {
  Dataset d = indexed(20);
  BatchLoader whole = make(d, 4);
  const std::vector<int32_t> full = epochLabels(whole, 2);
  std::set<int32_t> seen;
  for (int r = 0; r < 3; ++r) {
    // Batches of 12 over 3 shards: 4 samples each, then the last 8 as 3/3/2.
    BatchLoader l = make(d, 4, Shard{r, 3});
    const size_t size = r < 2 ? 7 : 6;
    EXPECT_EQ(l.shardSize(), int64_t(size));
    EXPECT_EQ(l.batchesPerEpoch(), 2);
    const std::vector<int32_t> mine = epochLabels(l, 2);
    ASSERT_EQ(mine.size(), size);
    for (size_t i = 0; i < mine.size(); ++i) {
      EXPECT_EQ(mine[i], full[r + 3 * i]);  // rank r takes positions r, r + w, ...
      EXPECT_TRUE(seen.insert(mine[i]).second) << "sample " << mine[i] << " in two shards";
    }
  }
  EXPECT_EQ(seen.size(), 20u);  // every sample, in one shard
}

// A batch that does not divide by the shards: shares differ by at most one sample, the shards
// of each batch are together that batch's positions, and a last batch with fewer samples than
// shards is dropped (a shard would have none).
TEST(BatchLoader, UnevenSharesCoverEachBatch) {
  Dataset d = indexed(23);  // batches of 10: 10, 10, 3 (3 shards: kept)
  BatchLoader whole = make(d, 10);
  const std::vector<int32_t> full = epochLabels(whole, 1);
  std::vector<std::set<int32_t>> perBatch(3);
  auto shard = [&](const Dataset& ds, int r) {
    return BatchLoader(ds, r == 0 ? 4 : 3, 5, Shard{r, 3}, {}, Shuffle::kYes, DropLast::kNo, Augment::kNo, 10);
  };
  for (int r = 0; r < 3; ++r) {
    BatchLoader l = shard(d, r);
    EXPECT_EQ(l.batchesPerEpoch(), 3);
    l.seek(1, 0);
    Batch b;
    for (size_t k = 0; l.next(b); ++k) {
      ASSERT_LT(k, 3u);
      EXPECT_EQ(b.size(), k < 2 ? (r == 0 ? 4 : 3) : 1);
      for (int64_t i = 0; i < b.size(); ++i) perBatch[k].insert(b.labels.data<int32_t>()[i]);
    }
  }
  for (size_t k = 0; k < 3; ++k) {
    const std::set<int32_t> want(full.begin() + 10 * long(k), full.begin() + std::min<long>(23, 10 * long(k + 1)));
    EXPECT_EQ(perBatch[k], want) << "batch " << k;
  }
  EXPECT_EQ(shard(indexed(22), 2).batchesPerEpoch(), 2);  // a last batch of 2 for 3 shards: dropped
  EXPECT_THROW(BatchLoader(d, 4, 5, Shard{2, 3}, {}, Shuffle::kYes, DropLast::kNo, Augment::kNo, 10), ConfigError);
}

TEST(BatchLoader, DropLastAndEndOfEpoch) {
  Dataset d = indexed(10);
  BatchLoader keep = make(d, 4), drop = make(d, 4, {}, {}, Shuffle::kYes, DropLast::kYes);
  EXPECT_EQ(keep.batchesPerEpoch(), 3);
  EXPECT_EQ(drop.batchesPerEpoch(), 2);
  EXPECT_EQ(keep.shardSize(), 10);
  EXPECT_EQ(drop.shardSize(), 8);  // the samples an epoch reads: the partial batch is dropped
  keep.seek(0, 0);
  Batch b;
  std::vector<int64_t> sizes;
  while (keep.next(b)) sizes.push_back(b.size());
  EXPECT_EQ(sizes, (std::vector<int64_t>{4, 4, 2}));
  EXPECT_EQ(b.x.shape(), (Shape{2, 1, 1, 1}));
  EXPECT_FALSE(keep.next(b));
  EXPECT_EQ(epochLabels(drop, 0).size(), 8u);
  EXPECT_THROW(keep.seek(0, 4), InputError);
  EXPECT_THROW(make(d, 0), ConfigError);
  EXPECT_THROW(make(d, 4, Shard{3, 3}), ConfigError);
}

TEST(BatchLoader, SeekMatchesIteration) {
  Dataset d = indexed(50, 4, 4);
  AugmentSpec aug;
  aug.cropPad = 1;
  aug.hflip = true;
  BatchLoader a = make(d, 8, {}, aug, Shuffle::kYes, DropLast::kNo, Augment::kYes);
  BatchLoader b = make(d, 8, {}, aug, Shuffle::kYes, DropLast::kNo, Augment::kYes);
  a.seek(3, 0);
  Batch ba, bb;
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(a.next(ba));
  b.seek(3, 3);
  ASSERT_TRUE(b.next(bb));
  EXPECT_EQ(a.batchIndex(), 4);
  EXPECT_EQ(b.epoch(), 3);
  ASSERT_EQ(ba.x.shape(), bb.x.shape());
  EXPECT_TRUE(std::equal(ba.x.data(), ba.x.data() + ba.x.numel(), bb.x.data()));
  EXPECT_TRUE(std::equal(ba.labels.data<int32_t>(), ba.labels.data<int32_t>() + 8, bb.labels.data<int32_t>()));
}

TEST(BatchLoader, PadToCentres) {
  Dataset d;
  d.sample = Shape{1, 2, 3};
  d.classes = 1;
  d.u8 = std::vector<uint8_t>(6, 255);
  d.labels = {0};
  AugmentSpec aug;
  aug.padTo = 6;
  BatchLoader l = make(d, 1, {}, aug);
  EXPECT_EQ(l.sampleShape(), (Shape{1, 6, 6}));
  Batch b;
  ASSERT_TRUE(l.next(b));
  EXPECT_EQ(b.x.shape(), (Shape{1, 1, 6, 6}));
  // Rows 2..3, columns 1..3 hold the image ((6 - 2) / 2 = 2, (6 - 3) / 2 = 1).
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 6; ++x) {
      const bool inside = y >= 2 && y < 4 && x >= 1 && x < 4;
      EXPECT_FLOAT_EQ(b.x.data()[y * 6 + x], inside ? 1.f : 0.f) << y << "," << x;
    }
  aug.padTo = 2;
  EXPECT_THROW(make(d, 1, {}, aug), ConfigError);
}

TEST(BatchLoader, CropAndFlipAreShiftsMirrorsAndKeyedBySample) {
  // Sample i: pixel (y, x) = 100 * i + 10 * y + x + 1 (never 0, so padding is recognisable).
  const int64_t n = 24, h = 5, w = 5;
  Dataset d;
  d.sample = Shape{1, h, w};
  d.classes = n;
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) d.f32.push_back(float(100 * i + 10 * y + x + 1));
  }
  AugmentSpec aug;
  aug.cropPad = 2;
  aug.hflip = true;
  // Renders of each sample, by label, for one loader configuration.
  auto renders = [&](int64_t batch, Shard shard, Augment au) {
    BatchLoader l = make(d, batch, shard, aug, Shuffle::kYes, DropLast::kNo, au);
    EXPECT_EQ(l.sampleShape(), (Shape{1, h, w}));
    l.seek(1, 0);
    std::map<int32_t, std::vector<float>> out;
    Batch b;
    while (l.next(b))
      for (int64_t k = 0; k < b.size(); ++k)
        out[b.labels.data<int32_t>()[k]] = std::vector<float>(b.x.data() + k * h * w, b.x.data() + (k + 1) * h * w);
    return out;
  };
  const auto train = renders(5, {}, Augment::kYes);
  // Same sample, same epoch: same crop/flip whatever the batch size or shard.
  for (const auto& [label, img] : renders(3, Shard{1, 2}, Augment::kYes)) EXPECT_EQ(img, train.at(label));

  int flipped = 0, shifted = 0;
  for (const auto& [i, img] : train) {
    // Find the (dy, dx, flip) that explains the render.
    bool found = false;
    for (int f = 0; f < 2 && !found; ++f)
      for (int dy = -2; dy <= 2 && !found; ++dy)
        for (int dx = -2; dx <= 2 && !found; ++dx) {
          bool ok = true;
          for (int y = 0; y < h && ok; ++y)
            for (int x = 0; x < w && ok; ++x) {
              const int sx = (f ? w - 1 - x : x) + dx, sy = y + dy;
              const float want = (sy < 0 || sy >= h || sx < 0 || sx >= w) ? 0.f : float(100 * i + 10 * sy + sx + 1);
              ok = img[y * w + x] == want;
            }
          if (ok) {
            found = true;
            flipped += f;
            shifted += dy != 0 || dx != 0;
          }
        }
    EXPECT_TRUE(found) << "sample " << i << " is not a crop/flip of its source";
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, n);
  EXPECT_GT(shifted, 0);

  // Evaluation never augments: deterministic and equal to the source.
  const auto eval = renders(5, {}, Augment::kNo);
  EXPECT_EQ(eval, renders(7, {}, Augment::kNo));
  for (const auto& [i, img] : eval)
    EXPECT_TRUE(std::equal(img.begin(), img.end(), d.f32.begin() + i * h * w));
}

TEST(BatchLoader, NormalisesPerChannel) {
  Dataset d;
  d.sample = Shape{2, 1, 2};
  d.classes = 1;
  d.u8 = {255, 0, 51, 102};
  d.labels = {0};
  AugmentSpec aug;
  aug.mean = {0.5f, 0.2f};
  aug.stddev = {0.25f, 0.1f};
  aug.padTo = 3;
  BatchLoader l = make(d, 1, {}, aug);
  Batch b;
  ASSERT_TRUE(l.next(b));
  ASSERT_EQ(b.x.shape(), (Shape{1, 2, 3, 3}));
  const float* x = b.x.data();
  // Channel 0: image row at y = 1, x = 0..1; padding is 0 before normalisation.
  EXPECT_NEAR(x[3], 2.f, 1e-5);
  EXPECT_NEAR(x[4], -2.f, 1e-5);
  EXPECT_NEAR(x[0], -2.f, 1e-5);
  EXPECT_NEAR(x[9 + 3], 0.f, 1e-5);   // 51/255 = 0.2
  EXPECT_NEAR(x[9 + 4], 2.f, 1e-5);   // 102/255 = 0.4
  EXPECT_NEAR(x[9 + 8], -2.f, 1e-5);  // padding: -0.2 / 0.1
  aug.mean = {0.5f};
  aug.stddev = {0.25f};
  EXPECT_THROW(make(d, 1, {}, aug), ConfigError);
}

}  // namespace sw
