// RAII wrappers over the HDF5 C API: files, float32/int64/uint8 datasets by path (groups created
// on demand), scalar attributes. Every failure throws IoError naming the file and object.
// Every float32/int64 dataset we write carries an "xxh3" attribute (XXH3-64 of its bytes, as
// written); reading one verifies it and throws DamagedError naming the file and the dataset.
// Datasets written by other programs (data sets) have no such attribute and are read as they are.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/Tensor.h"

namespace sw::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer c) : id_(id), close_(c) {}
  Handle(Handle&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  void reset();
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

enum class Access { kRead, kReadWrite, kCreate /* truncate */ };

class File {
 public:
  File(const std::string& path, Access a);
  const std::string& path() const { return path_; }
  bool exists(const std::string& obj) const;
  // Names of the members of a group ("/" for the root).
  std::vector<std::string> list(const std::string& group = "/") const;
  // Shape of a dataset.
  std::vector<int64_t> shape(const std::string& obj) const;
  bool isGroup(const std::string& obj) const;
  // Element class of a dataset: "float", "integer" or other.
  std::string typeClass(const std::string& obj) const;
  // Values in a dataset (the product of its shape); IoError when the product does not fit in int64
  // or the file cannot hold that much data: an unfiltered dataset must store every byte its shape
  // needs, a filtered (compressed) one at least 1/1100 of them (deflate's ratio bound). A damaged or
  // forged header then fails here, before anything of the claimed size is allocated. Every read
  // below checks this first; loaders call it before sizing their buffers.
  int64_t storedElements(const std::string& obj) const;

  void writeTensor(const std::string& obj, const Tensor& host);
  Tensor readTensor(const std::string& obj) const;  // any numeric type, converted to float32
  void writeInt64(const std::string& obj, const std::vector<int64_t>& v);
  std::vector<int64_t> readInt64(const std::string& obj) const;
  void writeUint8(const std::string& obj, const std::vector<uint8_t>& v, const std::vector<int64_t>& dims);
  // Reads rows [begin, begin + count) along dim 0 of any integer/float dataset into `out` as the
  // given type (HDF5 converts).
  void readRowsU8(const std::string& obj, int64_t begin, int64_t count, uint8_t* out) const;
  void readRowsF32(const std::string& obj, int64_t begin, int64_t count, float* out) const;
  void readRowsI32(const std::string& obj, int64_t begin, int64_t count, int32_t* out) const;

  // Attributes on an object ("/" for the file).
  void setAttr(const std::string& obj, const std::string& name, int64_t v);
  void setAttr(const std::string& obj, const std::string& name, double v);
  void setAttr(const std::string& obj, const std::string& name, const std::string& v);
  bool hasAttr(const std::string& obj, const std::string& name) const;
  int64_t attrInt(const std::string& obj, const std::string& name) const;
  double attrDouble(const std::string& obj, const std::string& name) const;
  std::string attrString(const std::string& obj, const std::string& name) const;

  void flush();
  hid_t id() const { return file_.get(); }
  // Whether writes add checksums and reads verify them (default on; benchmarks turn it off).
  void setChecksums(bool on) { checksums_ = on; }
  // Reads every dataset's bytes and checks them against its "xxh3" attribute (DamagedError naming
  // the first that fails or has none); returns how many datasets were checked.
  int verifyAll() const;
  // XXH3 over the file's content as its metadata describes it: every object's path, every
  // attribute's name and value (so each dataset's "xxh3"), every dataset's type and shape, in path
  // order. Reads no dataset; with verifyAll() it covers every byte that matters. A file created by
  // this object answers from what it wrote (no HDF5 call); digestFromFile() always walks the file.
  uint64_t digest() const;
  uint64_t digestFromFile() const;

 private:
  void ensureParents(const std::string& obj);
  Handle openDataset(const std::string& obj) const;
  int64_t storedElements(hid_t dataset, const std::string& obj) const;
  void readRows(const std::string& obj, int64_t begin, int64_t count, hid_t memType, void* out) const;
  [[noreturn]] void fail(const std::string& what) const;
  void stamp(hid_t dataset, const std::string& obj, uint64_t sum);
  void verify(const std::string& obj, const void* data, size_t bytes) const;
  // What digest() covers, key -> value: "path\x01" -> object kind (+ type and shape),
  // "path\x02name" -> attribute type and value. Kept while writing a file created here.
  using Content = std::map<std::string, std::string>;
  void note(const std::string& key, std::string value);
  void forget(const std::string& obj);
  void readContent(Content& c) const;
  static uint64_t hashContent(const Content& c);
  std::string path_;
  Handle file_;
  bool checksums_ = true;
  bool recorded_ = false;
  Content content_;
};

// True once an HDF5 file failed to close (its last writes failed: disk full, I/O error). HDF5
// 1.10 then keeps a half-closed file that crashes its own exit handler, so a process that saw
// this must end with std::_Exit after flushing its output (app/main.cpp does).
bool closeFailed();

// XXH3-64 of a buffer (the checksum of datasets and whole checkpoint files).
uint64_t checksum(const void* data, size_t bytes);

}  // namespace sw::h5
