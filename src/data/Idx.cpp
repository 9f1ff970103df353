// IDX loader for MNIST and Fashion-MNIST (LeCun's format: big-endian magic and dimensions, then
// raw bytes). zlib's gzread reads gzipped and plain files alike, so both forms load the same way.
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>

#include "core/Error.h"
#include "data/Dataset.h"

namespace sw {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr int64_t kIdxClasses = 10;

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};
using GzPtr = std::unique_ptr<gzFile_s, GzCloser>;

GzPtr openGz(const std::string& path) {
  GzPtr f(gzopen(path.c_str(), "rb"));
  if (!f) throw DataError(path + ": cannot open IDX file (missing or unreadable)");
  // Large buffer: the default 8 KiB makes inflating 47 MB of Fashion-MNIST noticeably slower.
  gzbuffer(f.get(), 1 << 18);
  return f;
}

// Reads exactly `n` bytes; fewer means the file is truncated (or the gzip stream is corrupt).
// `at` bytes of `what` were read before this call (they count in the message).
void readExact(gzFile f, const std::string& path, void* dst, int64_t n, const std::string& what, int64_t at = 0,
               int64_t total = -1) {
  auto* p = static_cast<unsigned char*>(dst);
  int64_t done = 0;
  while (done < n) {
    // gzread takes an unsigned count but returns int: stay below INT_MAX per call.
    const unsigned chunk = static_cast<unsigned>(std::min<int64_t>(n - done, 1 << 30));
    const int got = gzread(f, p + done, chunk);
    if (got < 0) {
      int err = 0;
      const char* msg = gzerror(f, &err);
      throw DataError(path + ": corrupt gzip stream while reading " + what + " (" + msg + ")");
    }
    if (got == 0) break;
    done += got;
  }
  if (done < n)
    throw DataError(path + ": truncated IDX file: expected " + std::to_string(total < 0 ? n : total) + " bytes of " +
                    what + ", found " + std::to_string(at + done));
}

// Reads `n` bytes into `v`, growing it as the data arrives: a header that claims more than the file
// holds (the count of a plain file is not known before reading, nor the inflated size of a gzipped
// one) fails as truncated before anything near the claimed size is allocated.
void readAll(gzFile f, const std::string& path, std::vector<uint8_t>& v, int64_t n, const std::string& what) {
  constexpr int64_t kStep = int64_t(64) << 20;
  v.clear();
  for (int64_t done = 0; done < n;) {
    const int64_t step = std::min(n - done, std::max<int64_t>(kStep, done));  // doubling past 64 MiB
    v.resize(static_cast<size_t>(done + step));
    readExact(f, path, v.data() + done, step, what, done, n);
    done += step;
  }
}

uint32_t readBe32(gzFile f, const std::string& path, const std::string& what) {
  unsigned char b[4];
  readExact(f, path, b, 4, what);
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

Dataset loadIdx(const std::string& imagesPath, const std::string& labelsPath, int64_t limit) {
  GzPtr fi = openGz(imagesPath);
  const uint32_t mi = readBe32(fi.get(), imagesPath, "header");
  if (mi != kImagesMagic)
    throw DataError(imagesPath + ": not an IDX image file: magic " + hex(mi) + ", expected " + hex(kImagesMagic) +
                    (mi == kLabelsMagic ? " (this is a label file; images and labels swapped?)" : ""));
  const int64_t n = readBe32(fi.get(), imagesPath, "header");
  const int64_t rows = readBe32(fi.get(), imagesPath, "header");
  const int64_t cols = readBe32(fi.get(), imagesPath, "header");
  // Real IDX image files are at most a few hundred pixels a side; huge values mean a damaged header.
  if (rows <= 0 || cols <= 0 || rows > 4096 || cols > 4096)
    throw DataError(imagesPath + ": implausible IDX image size " + std::to_string(rows) + "x" +
                    std::to_string(cols));

  GzPtr fl = openGz(labelsPath);
  const uint32_t ml = readBe32(fl.get(), labelsPath, "header");
  if (ml != kLabelsMagic)
    throw DataError(labelsPath + ": not an IDX label file: magic " + hex(ml) + ", expected " + hex(kLabelsMagic) +
                    (ml == kImagesMagic ? " (this is an image file; images and labels swapped?)" : ""));
  const int64_t nl = readBe32(fl.get(), labelsPath, "header");
  if (nl != n)
    throw DataError(imagesPath + " has " + std::to_string(n) + " images but " + labelsPath + " has " +
                    std::to_string(nl) + " labels");
  if (n == 0) throw DataError(imagesPath + ": IDX file holds no images");

  const int64_t take = limit > 0 ? std::min(limit, n) : n;
  Dataset d;
  d.source = imagesPath;
  d.sample = Shape{1, rows, cols};
  d.classes = kIdxClasses;
  // take <= 2^32 - 1 and rows * cols <= 2^24: the product fits in int64.
  readAll(fi.get(), imagesPath, d.u8, take * rows * cols, "pixels");

  std::vector<uint8_t> raw;
  readAll(fl.get(), labelsPath, raw, take, "labels");
  d.labels.resize(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] >= kIdxClasses)
      throw DataError(labelsPath + ": label " + std::to_string(raw[i]) + " of sample " + std::to_string(i) +
                      " is out of range [0, " + std::to_string(kIdxClasses) + ")");
    d.labels[i] = raw[i];
  }
  return d;
}

}  // namespace sw
