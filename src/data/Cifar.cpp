// CIFAR-10 binary batches: records of one label byte followed by 3072 pixel bytes (R, G, B planes of
// 32x32), so a record's pixels are already in CHW order and are copied as they are.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/Error.h"
#include "data/Dataset.h"

namespace sw {
namespace {
constexpr int64_t kPixels = 3 * 32 * 32;
constexpr int64_t kRecord = 1 + kPixels;
constexpr int64_t kCifarClasses = 10;
}  // namespace

Dataset loadCifar10(const std::vector<std::string>& batchFiles, int64_t limit) {
  if (batchFiles.empty()) throw DataError("CIFAR-10: no batch files given");
  namespace fs = std::filesystem;

  // Size every file first: a wrong size is caught before reading 150 MB, and one allocation suffices.
  std::vector<int64_t> records;
  int64_t total = 0;
  for (const std::string& path : batchFiles) {
    std::error_code ec;
    const auto bytes = fs::file_size(path, ec);
    if (ec) throw DataError(path + ": cannot open CIFAR-10 batch (" + ec.message() + ")");
    if (bytes == 0 || bytes % kRecord != 0)
      throw DataError(path + ": not a CIFAR-10 binary batch: " + std::to_string(bytes) +
                      " bytes is not a positive multiple of the 3073-byte record (truncated file, or "
                      "the python/CIFAR-100 version?)");
    records.push_back(static_cast<int64_t>(bytes) / kRecord);
    total += records.back();
  }
  const int64_t take = limit > 0 ? std::min(limit, total) : total;

  Dataset d;
  d.source = batchFiles.size() == 1 ? batchFiles[0] : fs::path(batchFiles[0]).parent_path().string();
  if (d.source.empty()) d.source = batchFiles[0];
  d.sample = Shape{3, 32, 32};
  d.classes = kCifarClasses;
  d.u8.resize(static_cast<size_t>(take * kPixels));
  d.labels.resize(static_cast<size_t>(take));

  std::vector<char> buf;
  int64_t at = 0;
  for (size_t f = 0; f < batchFiles.size() && at < take; ++f) {
    const std::string& path = batchFiles[f];
    const int64_t n = std::min(records[f], take - at);
    std::ifstream in(path, std::ios::binary);
    buf.resize(static_cast<size_t>(n * kRecord));
    if (!in || !in.read(buf.data(), static_cast<std::streamsize>(buf.size())))
      throw DataError(path + ": read failed after " + std::to_string(in.gcount()) + " bytes");
    for (int64_t r = 0; r < n; ++r) {
      const auto* rec = reinterpret_cast<const uint8_t*>(buf.data()) + r * kRecord;
      if (rec[0] >= kCifarClasses)
        throw DataError(path + ": label " + std::to_string(rec[0]) + " of record " + std::to_string(r) +
                        " is out of range [0, 10) (a CIFAR-100 file?)");
      d.labels[static_cast<size_t>(at + r)] = rec[0];
      std::copy(rec + 1, rec + kRecord, d.u8.begin() + (at + r) * kPixels);
    }
    at += n;
  }
  return d;
}

}  // namespace sw
