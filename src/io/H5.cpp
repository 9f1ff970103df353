// HDF5 wrappers. HDF5's own error stack printing is silenced: we throw instead.
#include "io/H5.h"

#include <xxhash.h>

#include <cstdio>

#include <cstring>

#include "core/Error.h"

namespace sw::h5 {
namespace {
struct Silence {
  Silence() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const Silence kSilence;

Handle dataspace(const std::vector<int64_t>& dims) {
  std::vector<hsize_t> d(dims.begin(), dims.end());
  return Handle(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr), H5Sclose);
}
}  // namespace

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    close_ = o.close_;
    o.id_ = -1;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && close_) close_(id_);
  id_ = -1;
}

File::File(const std::string& path, Access a) : path_(path) {
  (void)kSilence;
  hid_t id = -1;
  if (a == Access::kCreate) id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  else {
    if (H5Fis_hdf5(path.c_str()) <= 0)
      throw IoError(path + ": not an HDF5 file (missing, unreadable or wrong signature)");
    id = H5Fopen(path.c_str(), a == Access::kRead ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT);
  }
  if (id < 0) throw IoError(path + ": cannot " + (a == Access::kCreate ? "create" : "open") + " HDF5 file");
  file_ = Handle(id, H5Fclose);
}

void File::fail(const std::string& what) const { throw IoError(path_ + ": " + what); }

bool File::exists(const std::string& obj) const {
  if (obj == "/" || obj.empty()) return true;
  // Check each prefix: H5Lexists fails if an intermediate group is missing.
  size_t pos = 0;
  while (true) {
    pos = obj.find('/', pos + 1);
    std::string prefix = obj.substr(0, pos);
    if (!prefix.empty() && prefix != "/" && H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0)
      return false;
    if (pos == std::string::npos) return true;
  }
}

std::vector<std::string> File::list(const std::string& group) const {
  Handle g(H5Gopen2(file_.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.valid()) fail("no group '" + group + "'");
  H5G_info_t info;
  H5Gget_info(g.get(), &info);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t n = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string s(static_cast<size_t>(n), '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), n + 1, H5P_DEFAULT);
    names.push_back(s);
  }
  return names;
}

Handle File::openDataset(const std::string& obj) const {
  if (!exists(obj)) fail("missing dataset '" + obj + "'");
  Handle d(H5Dopen2(file_.get(), obj.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail("'" + obj + "' is not a dataset");
  return d;
}

std::vector<int64_t> File::shape(const std::string& obj) const {
  Handle d = openDataset(obj);
  Handle s(H5Dget_space(d.get()), H5Sclose);
  int r = H5Sget_simple_extent_ndims(s.get());
  std::vector<hsize_t> dims(static_cast<size_t>(std::max(r, 0)));
  H5Sget_simple_extent_dims(s.get(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

std::string File::typeClass(const std::string& obj) const {
  Handle d = openDataset(obj);
  Handle t(H5Dget_type(d.get()), H5Tclose);
  switch (H5Tget_class(t.get())) {
    case H5T_FLOAT: return "float";
    case H5T_INTEGER: return "integer";
    default: return "other";
  }
}

void File::ensureParents(const std::string& obj) {
  size_t pos = 0;
  while ((pos = obj.find('/', pos + 1)) != std::string::npos) {
    std::string g = obj.substr(0, pos);
    if (g.empty() || g == "/") continue;
    if (H5Lexists(file_.get(), g.c_str(), H5P_DEFAULT) <= 0) {
      Handle h(H5Gcreate2(file_.get(), g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
      if (!h.valid()) fail("cannot create group '" + g + "'");
    }
  }
}

uint64_t checksum(const void* data, size_t bytes) { return XXH3_64bits(data, bytes); }

uint64_t fileChecksum(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw IoError(path + ": cannot open to checksum");
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::vector<char> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) XXH3_64bits_update(st, buf.data(), n);
  const bool bad = std::ferror(f);
  std::fclose(f);
  const uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  if (bad) throw IoError(path + ": read error while checksumming");
  return h;
}

// The attribute holds the 64 bits as a signed integer (HDF5 attributes here are int64).
void File::stamp(const std::string& obj, const void* data, size_t bytes) {
  if (checksums_) setAttr(obj, "xxh3", int64_t(checksum(data, bytes)));
}

void File::verify(const std::string& obj, const void* data, size_t bytes) const {
  if (!checksums_ || !hasAttr(obj, "xxh3")) return;
  const uint64_t stored = uint64_t(attrInt(obj, "xxh3")), got = checksum(data, bytes);
  if (stored != got) {
    char msg[96];
    std::snprintf(msg, sizeof msg, " fails its checksum (stored xxh3 %016llx, data %016llx)",
                  static_cast<unsigned long long>(stored), static_cast<unsigned long long>(got));
    throw DamagedError(path_ + ": dataset '" + obj + "'" + msg);
  }
}

void File::writeTensor(const std::string& obj, const Tensor& host) {
  SW_CHECK(host.device().isCpu(), "writeTensor needs a host tensor");
  ensureParents(obj);
  if (exists(obj)) H5Ldelete(file_.get(), obj.c_str(), H5P_DEFAULT);
  std::vector<int64_t> dims = host.shape().dims();
  Handle sp = dataspace(dims);
  Handle d(H5Dcreate2(file_.get(), obj.c_str(), H5T_IEEE_F32LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail("cannot create dataset '" + obj + "'");
  if (host.numel() && H5Dwrite(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.data()) < 0)
    fail("cannot write dataset '" + obj + "'");
  d.reset();
  stamp(obj, host.data(), host.bytes());
}

Tensor File::readTensor(const std::string& obj) const {
  Handle d = openDataset(obj);
  std::vector<int64_t> dims = shape(obj);
  Tensor t = Tensor::empty(Shape(dims));
  if (t.numel() && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()) < 0)
    fail("cannot read dataset '" + obj + "' as float32");
  verify(obj, t.data(), t.bytes());
  return t;
}

void File::writeInt64(const std::string& obj, const std::vector<int64_t>& v) {
  ensureParents(obj);
  if (exists(obj)) H5Ldelete(file_.get(), obj.c_str(), H5P_DEFAULT);
  Handle sp = dataspace({static_cast<int64_t>(v.size())});
  Handle d(H5Dcreate2(file_.get(), obj.c_str(), H5T_STD_I64LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail("cannot create dataset '" + obj + "'");
  if (!v.empty() && H5Dwrite(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail("cannot write dataset '" + obj + "'");
  d.reset();
  stamp(obj, v.data(), v.size() * sizeof(int64_t));
}

std::vector<int64_t> File::readInt64(const std::string& obj) const {
  Handle d = openDataset(obj);
  std::vector<int64_t> dims = shape(obj);
  int64_t n = 1;
  for (auto x : dims) n *= x;
  std::vector<int64_t> v(static_cast<size_t>(n));
  if (n && H5Dread(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail("cannot read dataset '" + obj + "' as int64");
  verify(obj, v.data(), v.size() * sizeof(int64_t));
  return v;
}

void File::writeUint8(const std::string& obj, const std::vector<uint8_t>& v, const std::vector<int64_t>& dims) {
  ensureParents(obj);
  if (exists(obj)) H5Ldelete(file_.get(), obj.c_str(), H5P_DEFAULT);
  Handle sp = dataspace(dims);
  Handle d(H5Dcreate2(file_.get(), obj.c_str(), H5T_STD_U8LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail("cannot create dataset '" + obj + "'");
  if (!v.empty() && H5Dwrite(d.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail("cannot write dataset '" + obj + "'");
}

void File::readRows(const std::string& obj, int64_t begin, int64_t count, hid_t memType, void* out) const {
  Handle d = openDataset(obj);
  std::vector<int64_t> dims = shape(obj);
  if (dims.empty() || begin < 0 || begin + count > dims[0])
    fail("rows [" + std::to_string(begin) + ", " + std::to_string(begin + count) + ") outside dataset '" + obj + "'");
  Handle fs(H5Dget_space(d.get()), H5Sclose);
  std::vector<hsize_t> start(dims.size(), 0), cnt(dims.begin(), dims.end());
  start[0] = static_cast<hsize_t>(begin);
  cnt[0] = static_cast<hsize_t>(count);
  H5Sselect_hyperslab(fs.get(), H5S_SELECT_SET, start.data(), nullptr, cnt.data(), nullptr);
  Handle ms(H5Screate_simple(static_cast<int>(cnt.size()), cnt.data(), nullptr), H5Sclose);
  if (count && H5Dread(d.get(), memType, ms.get(), fs.get(), H5P_DEFAULT, out) < 0)
    fail("cannot read rows of dataset '" + obj + "'");
}

void File::readRowsU8(const std::string& obj, int64_t b, int64_t c, uint8_t* out) const { readRows(obj, b, c, H5T_NATIVE_UINT8, out); }
void File::readRowsF32(const std::string& obj, int64_t b, int64_t c, float* out) const { readRows(obj, b, c, H5T_NATIVE_FLOAT, out); }
void File::readRowsI32(const std::string& obj, int64_t b, int64_t c, int32_t* out) const { readRows(obj, b, c, H5T_NATIVE_INT32, out); }

namespace {
Handle openObj(hid_t file, const std::string& obj) {
  return Handle(H5Oopen(file, obj.empty() ? "/" : obj.c_str(), H5P_DEFAULT), H5Oclose);
}
}  // namespace

bool File::isGroup(const std::string& obj) const {
  Handle o = openObj(file_.get(), obj);
  return o.valid() && H5Iget_type(o.get()) == H5I_GROUP;
}

void File::setAttr(const std::string& obj, const std::string& name, int64_t v) {
  Handle o = openObj(file_.get(), obj);
  if (!o.valid()) fail("no object '" + obj + "' for attribute " + name);
  if (H5Aexists(o.get(), name.c_str()) > 0) H5Adelete(o.get(), name.c_str());
  Handle sp(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(o.get(), name.c_str(), H5T_STD_I64LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), H5T_NATIVE_INT64, &v) < 0) fail("cannot write attribute " + name);
}

void File::setAttr(const std::string& obj, const std::string& name, double v) {
  Handle o = openObj(file_.get(), obj);
  if (!o.valid()) fail("no object '" + obj + "' for attribute " + name);
  if (H5Aexists(o.get(), name.c_str()) > 0) H5Adelete(o.get(), name.c_str());
  Handle sp(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(o.get(), name.c_str(), H5T_IEEE_F64LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) fail("cannot write attribute " + name);
}

void File::setAttr(const std::string& obj, const std::string& name, const std::string& v) {
  Handle o = openObj(file_.get(), obj);
  if (!o.valid()) fail("no object '" + obj + "' for attribute " + name);
  if (H5Aexists(o.get(), name.c_str()) > 0) H5Adelete(o.get(), name.c_str());
  Handle t(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(t.get(), std::max<size_t>(1, v.size()));
  Handle sp(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(o.get(), name.c_str(), t.get(), sp.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  std::string buf = v.empty() ? std::string(1, '\0') : v;
  if (!a.valid() || H5Awrite(a.get(), t.get(), buf.data()) < 0) fail("cannot write attribute " + name);
}

bool File::hasAttr(const std::string& obj, const std::string& name) const {
  Handle o = openObj(file_.get(), obj);
  return o.valid() && H5Aexists(o.get(), name.c_str()) > 0;
}

int64_t File::attrInt(const std::string& obj, const std::string& name) const {
  Handle o = openObj(file_.get(), obj);
  Handle a(o.valid() ? H5Aopen(o.get(), name.c_str(), H5P_DEFAULT) : -1, H5Aclose);
  int64_t v = 0;
  if (!a.valid() || H5Aread(a.get(), H5T_NATIVE_INT64, &v) < 0) fail("missing integer attribute '" + name + "' on '" + obj + "'");
  return v;
}

double File::attrDouble(const std::string& obj, const std::string& name) const {
  Handle o = openObj(file_.get(), obj);
  Handle a(o.valid() ? H5Aopen(o.get(), name.c_str(), H5P_DEFAULT) : -1, H5Aclose);
  double v = 0;
  if (!a.valid() || H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) fail("missing float attribute '" + name + "' on '" + obj + "'");
  return v;
}

std::string File::attrString(const std::string& obj, const std::string& name) const {
  Handle o = openObj(file_.get(), obj);
  Handle a(o.valid() ? H5Aopen(o.get(), name.c_str(), H5P_DEFAULT) : -1, H5Aclose);
  if (!a.valid()) fail("missing string attribute '" + name + "' on '" + obj + "'");
  Handle t(H5Aget_type(a.get()), H5Tclose);
  Handle mt(H5Tcopy(H5T_C_S1), H5Tclose);
  if (H5Tis_variable_str(t.get()) > 0) {
    // Variable-length strings (h5py's default for str) come back as a malloc'ed char*.
    H5Tset_size(mt.get(), H5T_VARIABLE);
    char* p = nullptr;
    if (H5Aread(a.get(), mt.get(), &p) < 0) fail("cannot read attribute '" + name + "'");
    std::string s = p ? p : "";
    H5free_memory(p);
    return s;
  }
  // Fixed-length: one more byte for the terminator, or HDF5 drops the last character of a
  // space/null-padded string of exactly n characters.
  const size_t n = H5Tget_size(t.get()) + 1;
  std::string s(n, '\0');
  H5Tset_size(mt.get(), n);
  if (H5Aread(a.get(), mt.get(), s.data()) < 0) fail("cannot read attribute '" + name + "'");
  s.resize(std::strlen(s.c_str()));
  return s;
}

void File::flush() {
  if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) fail("flush failed");
}

}  // namespace sw::h5
