// HDF5 wrappers. HDF5's own error stack printing is silenced: we throw instead.
#include "io/H5.h"

#include <xxhash.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <vector>

#include <cstring>

#include "core/Error.h"

namespace sw::h5 {
namespace {
struct Silence {
  Silence() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
const Silence kSilence;
std::atomic<bool> gCloseFailed{false};

herr_t closeFile(hid_t id) {
  const herr_t rc = H5Fclose(id);
  if (rc < 0) gCloseFailed = true;
  return rc;
}

std::vector<int64_t> dimsOf(hid_t dataset) {
  Handle sp(H5Dget_space(dataset), H5Sclose);
  const int r = H5Sget_simple_extent_ndims(sp.get());
  std::vector<hsize_t> d(static_cast<size_t>(std::max(r, 0)));
  H5Sget_simple_extent_dims(sp.get(), d.data(), nullptr);
  return std::vector<int64_t>(d.begin(), d.end());
}

std::string dimsText(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(uint64_t(dims[i]));
  return s + "]";
}

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
  file_ = Handle(id, closeFile);
  if (a == Access::kCreate) {
    recorded_ = true;
    note("/\x01", "g");
  }
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
  if (H5Gget_info(g.get(), &info) < 0) fail("cannot list group '" + group + "'");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    // A damaged link table answers -1 for the name's length.
    const ssize_t n = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) fail("cannot read the name of member " + std::to_string(i) + " of group '" + group + "'");
    std::string s(static_cast<size_t>(n), '\0');
    if (H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, s.data(), n + 1, H5P_DEFAULT) < 0)
      fail("cannot read the name of member " + std::to_string(i) + " of group '" + group + "'");
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

int64_t File::storedElements(const std::string& obj) const {
  Handle d = openDataset(obj);
  return storedElements(d.get(), obj);
}

int64_t File::storedElements(hid_t dataset, const std::string& obj) const {
  const std::vector<int64_t> dims = dimsOf(dataset);
  {
    // A dataspace larger than its own maximum is a damaged header (HDF5 then reads past its buffers).
    Handle sp(H5Dget_space(dataset), H5Sclose);
    std::vector<hsize_t> cur(dims.size()), max(dims.size());
    if (!sp.valid() || H5Sget_simple_extent_dims(sp.get(), cur.data(), max.data()) < 0)
      fail("dataset '" + obj + "' has no readable shape");
    for (size_t i = 0; i < dims.size(); ++i)
      if (max[i] != H5S_UNLIMITED && cur[i] > max[i])
        fail("dataset '" + obj + "' has shape " + dimsText(dims) + " beyond its maximum shape");
    // Chunks wider than a fixed dimension (HDF5 refuses to create them) make it read a chunk as
    // larger than it is.
    Handle dcpl(H5Dget_create_plist(dataset), H5Pclose);
    if (dcpl.valid() && H5Pget_layout(dcpl.get()) == H5D_CHUNKED) {
      std::vector<hsize_t> chunk(dims.size());
      if (H5Pget_chunk(dcpl.get(), int(chunk.size()), chunk.data()) != int(chunk.size()))
        fail("dataset '" + obj + "' has an unreadable chunk shape");
      for (size_t i = 0; i < dims.size(); ++i)
        if (chunk[i] == 0 || (max[i] != H5S_UNLIMITED && chunk[i] > max[i]))
          fail("dataset '" + obj + "' of shape " + dimsText(dims) + " has chunks " +
               dimsText(std::vector<int64_t>(chunk.begin(), chunk.end())) + " that do not fit it");
    }
  }
  Handle t(H5Dget_type(dataset), H5Tclose);
  const size_t typeBytes = t.valid() ? H5Tget_size(t.get()) : 0;
  if (typeBytes == 0) fail("dataset '" + obj + "' has no readable element type");
  int64_t n = 1, bytes = 0;
  for (int64_t x : dims)
    if (x < 0 || __builtin_mul_overflow(n, x, &n)) fail("dataset '" + obj + "' has an impossible shape " + dimsText(dims));
  if (__builtin_mul_overflow(n, int64_t(typeBytes), &bytes))
    fail("dataset '" + obj + "' has an impossible shape " + dimsText(dims));
  if (bytes == 0) return n;
  Handle dcpl(H5Dget_create_plist(dataset), H5Pclose);
  if (dcpl.valid() && H5Pget_layout(dcpl.get()) == H5D_VIRTUAL) return n;  // data in other files: not bounded here
  const bool filtered = dcpl.valid() && H5Pget_layout(dcpl.get()) == H5D_CHUNKED && H5Pget_nfilters(dcpl.get()) > 0;
  const uint64_t stored = H5Dget_storage_size(dataset);
  const uint64_t ratio = filtered ? 1100 : 1;
  if (stored == 0 || (uint64_t(bytes) + ratio - 1) / ratio > stored)
    fail("dataset '" + obj + "' of shape " + dimsText(dims) + " needs " + std::to_string(bytes) + " bytes, the file stores " +
         std::to_string(stored) + (filtered ? " compressed" : "") + " (truncated, never written or a damaged header)");
  return n;
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
      note(g + "\x01", "g");
    }
  }
}

bool closeFailed() { return gCloseFailed; }

uint64_t checksum(const void* data, size_t bytes) { return XXH3_64bits(data, bytes); }

namespace {
void feed(XXH3_state_t* st, const void* p, size_t n) { XXH3_64bits_update(st, p, n); }
void feed(XXH3_state_t* st, const std::string& s) {
  const uint64_t n = s.size();
  feed(st, &n, sizeof n);
  feed(st, s.data(), s.size());
}

// Every object below the group `g` (path `path`) in name order, each opened once:
// fn(path, id, isGroup). One open per object keeps a walk of a few hundred datasets ~ms.
void visit(hid_t g, const std::string& path, const std::function<void(const std::string&, hid_t, bool)>& fn) {
  H5G_info_t info;
  if (H5Gget_info(g, &info) < 0) throw IoError("cannot list group '" + path + "'");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t n = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (n < 0) throw IoError("cannot read the name of member " + std::to_string(i) + " of group '" + path + "'");
    std::string name(static_cast<size_t>(n), '\0');
    if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT) < 0)
      throw IoError("cannot read the name of member " + std::to_string(i) + " of group '" + path + "'");
    const std::string obj = (path == "/" ? "" : path) + "/" + name;
    Handle o(H5Oopen(g, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (!o.valid()) throw IoError("cannot open '" + obj + "'");
    const bool group = H5Iget_type(o.get()) == H5I_GROUP;
    fn(obj, o.get(), group);
    if (group) visit(o.get(), obj, fn);
  }
}

template <class T>
std::string bytesOf(char tag, const T& v) {
  std::string s(1, tag);
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
  return s;
}

struct AttrRead {
  const std::string* obj;
  std::map<std::string, std::string>* content;
  bool failed = false;
};

// One attribute's type and value as File::note records them when writing.
herr_t readAttr(hid_t loc, const char* name, const H5A_info_t*, void* data) {
  auto* r = static_cast<AttrRead*>(data);
  Handle a(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
  Handle t(a.valid() ? H5Aget_type(a.get()) : -1, H5Tclose);
  if (!t.valid()) return r->failed = true, -1;
  herr_t rc = 0;
  std::string v;
  switch (H5Tget_class(t.get())) {
    case H5T_INTEGER: {
      int64_t x = 0;
      rc = H5Aread(a.get(), H5T_NATIVE_INT64, &x);
      v = bytesOf('i', x);
      break;
    }
    case H5T_FLOAT: {
      double x = 0;
      rc = H5Aread(a.get(), H5T_NATIVE_DOUBLE, &x);
      v = bytesOf('f', x);
      break;
    }
    case H5T_STRING: {
      if (H5Tis_variable_str(t.get()) > 0) {
        char* p = nullptr;
        rc = H5Aread(a.get(), t.get(), &p);
        v = std::string("s") + (p ? p : "");
        if (p) H5free_memory(p);
      } else {
        std::string x(H5Tget_size(t.get()), '\0');
        rc = H5Aread(a.get(), t.get(), x.data());
        v = "s" + x;
      }
      break;
    }
    default: v = "?";
  }
  if (rc < 0) return r->failed = true, -1;
  (*r->content)[*r->obj + "\x02" + name] = std::move(v);
  return 0;
}

std::string datasetKind(int typeClass, const std::vector<int64_t>& dims) {
  std::string s = bytesOf('d', typeClass);
  s.append(reinterpret_cast<const char*>(dims.data()), dims.size() * sizeof(int64_t));
  return s;
}
}  // namespace

void File::note(const std::string& key, std::string value) {
  if (recorded_) content_[key] = std::move(value);
}

void File::forget(const std::string& obj) {
  for (const char sep : {'\x01', '\x02'}) {
    const std::string from = obj + sep;
    auto it = content_.lower_bound(from);
    while (it != content_.end() && it->first.compare(0, from.size(), from) == 0) it = content_.erase(it);
  }
}

void File::readContent(Content& c) const {
  auto object = [&](const std::string& obj, hid_t id, bool group) {
    if (group) {
      c[obj + "\x01"] = "g";
    } else {
      Handle t(H5Dget_type(id), H5Tclose);
      c[obj + "\x01"] = datasetKind(int(H5Tget_class(t.get())), dimsOf(id));
    }
    AttrRead r{&obj, &c};
    hsize_t idx = 0;
    if (H5Aiterate2(id, H5_INDEX_NAME, H5_ITER_INC, &idx, readAttr, &r) < 0 || r.failed)
      fail("cannot read the attributes of '" + obj + "'");
  };
  object("/", file_.get(), true);
  visit(file_.get(), "/", object);
}

uint64_t File::hashContent(const Content& c) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(st.get());
  for (const auto& [k, v] : c) {
    feed(st.get(), k);
    feed(st.get(), v);
  }
  return XXH3_64bits_digest(st.get());
}

uint64_t File::digest() const { return recorded_ ? hashContent(content_) : digestFromFile(); }

uint64_t File::digestFromFile() const {
  Content c;
  readContent(c);
  return hashContent(c);
}

int File::verifyAll() const {
  int n = 0;
  std::vector<char> buf;
  visit(file_.get(), "/", [&](const std::string& obj, hid_t id, bool group) {
    if (group) return;
    if (H5Aexists(id, "xxh3") <= 0) throw DamagedError(path_ + ": dataset '" + obj + "' has no checksum");
    int64_t stored = 0;
    Handle a(H5Aopen(id, "xxh3", H5P_DEFAULT), H5Aclose);
    if (!a.valid() || H5Aread(a.get(), H5T_NATIVE_INT64, &stored) < 0) fail("cannot read the checksum of '" + obj + "'");
    Handle ft(H5Dget_type(id), H5Tclose);
    Handle mt(H5Tget_native_type(ft.get(), H5T_DIR_ASCEND), H5Tclose);
    const size_t bytes = size_t(storedElements(id, obj)) * H5Tget_size(mt.get());
    buf.resize(bytes);
    if (bytes && H5Dread(id, mt.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0)
      fail("cannot read dataset '" + obj + "'");
    const uint64_t got = checksum(buf.data(), bytes);
    if (got != uint64_t(stored)) {
      char msg[96];
      std::snprintf(msg, sizeof msg, " fails its checksum (stored xxh3 %016llx, data %016llx)",
                    static_cast<unsigned long long>(stored), static_cast<unsigned long long>(got));
      throw DamagedError(path_ + ": dataset '" + obj + "'" + msg);
    }
    ++n;
  });
  return n;
}

// Each dataset's "xxh3" attribute, created on the open dataset (no path lookup).
void File::stamp(hid_t dataset, const std::string& obj, uint64_t sum) {
  if (!checksums_) return;
  const int64_t v = int64_t(sum);  // the attribute holds the 64 bits as a signed integer
  Handle sp(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(dataset, "xxh3", H5T_STD_I64LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), H5T_NATIVE_INT64, &v) < 0) fail("cannot write the checksum of '" + obj + "'");
  note(obj + "\x02xxh3", bytesOf('i', v));
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
  if (exists(obj)) {
    H5Ldelete(file_.get(), obj.c_str(), H5P_DEFAULT);
    forget(obj);
  }
  std::vector<int64_t> dims = host.shape().dims();
  Handle sp = dataspace(dims);
  Handle d(H5Dcreate2(file_.get(), obj.c_str(), H5T_IEEE_F32LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail("cannot create dataset '" + obj + "'");
  note(obj + "\x01", datasetKind(int(H5T_FLOAT), dims));
  // A large tensor is hashed on a second thread while HDF5 copies it out: the checksum then costs
  // (almost) no time beside the write.
  std::future<uint64_t> sum;
  if (checksums_ && host.bytes() >= (size_t(1) << 20))
    sum = std::async(std::launch::async, [&host] { return checksum(host.data(), host.bytes()); });
  const bool ok = !host.numel() || H5Dwrite(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.data()) >= 0;
  const bool async = sum.valid();
  const uint64_t h = async ? sum.get() : 0;  // joined before anything can throw: the thread reads `host`
  if (!ok) fail("cannot write dataset '" + obj + "'");
  if (checksums_) stamp(d.get(), obj, async ? h : checksum(host.data(), host.bytes()));
}

Tensor File::readTensor(const std::string& obj) const {
  Handle d = openDataset(obj);
  storedElements(d.get(), obj);
  std::vector<int64_t> dims = shape(obj);
  Tensor t = Tensor::empty(Shape(dims));
  if (t.numel() && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()) < 0)
    fail("cannot read dataset '" + obj + "' as float32");
  verify(obj, t.data(), t.bytes());
  return t;
}

void File::writeInt64(const std::string& obj, const std::vector<int64_t>& v) {
  ensureParents(obj);
  if (exists(obj)) {
    H5Ldelete(file_.get(), obj.c_str(), H5P_DEFAULT);
    forget(obj);
  }
  Handle sp = dataspace({static_cast<int64_t>(v.size())});
  Handle d(H5Dcreate2(file_.get(), obj.c_str(), H5T_STD_I64LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail("cannot create dataset '" + obj + "'");
  note(obj + "\x01", datasetKind(int(H5T_INTEGER), std::vector<int64_t>{static_cast<int64_t>(v.size())}));
  if (!v.empty() && H5Dwrite(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail("cannot write dataset '" + obj + "'");
  if (checksums_) stamp(d.get(), obj, checksum(v.data(), v.size() * sizeof(int64_t)));
}

std::vector<int64_t> File::readInt64(const std::string& obj) const {
  Handle d = openDataset(obj);
  const int64_t n = storedElements(d.get(), obj);
  std::vector<int64_t> v(static_cast<size_t>(n));
  if (n && H5Dread(d.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail("cannot read dataset '" + obj + "' as int64");
  verify(obj, v.data(), v.size() * sizeof(int64_t));
  return v;
}

void File::writeUint8(const std::string& obj, const std::vector<uint8_t>& v, const std::vector<int64_t>& dims) {
  ensureParents(obj);
  if (exists(obj)) {
    H5Ldelete(file_.get(), obj.c_str(), H5P_DEFAULT);
    forget(obj);
  }
  Handle sp = dataspace(dims);
  Handle d(H5Dcreate2(file_.get(), obj.c_str(), H5T_STD_U8LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  if (!d.valid()) fail("cannot create dataset '" + obj + "'");
  note(obj + "\x01", datasetKind(int(H5T_INTEGER), dims));
  if (!v.empty() && H5Dwrite(d.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail("cannot write dataset '" + obj + "'");
  if (checksums_) stamp(d.get(), obj, checksum(v.data(), v.size()));
}

void File::readRows(const std::string& obj, int64_t begin, int64_t count, hid_t memType, void* out) const {
  Handle d = openDataset(obj);
  storedElements(d.get(), obj);
  std::vector<int64_t> dims = shape(obj);
  if (dims.empty() || begin < 0 || count < 0 || begin > dims[0] || count > dims[0] - begin)
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
  note((obj.empty() ? "/" : obj) + "\x02" + name, bytesOf('i', v));
}

void File::setAttr(const std::string& obj, const std::string& name, double v) {
  Handle o = openObj(file_.get(), obj);
  if (!o.valid()) fail("no object '" + obj + "' for attribute " + name);
  if (H5Aexists(o.get(), name.c_str()) > 0) H5Adelete(o.get(), name.c_str());
  Handle sp(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(o.get(), name.c_str(), H5T_IEEE_F64LE, sp.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!a.valid() || H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) fail("cannot write attribute " + name);
  note((obj.empty() ? "/" : obj) + "\x02" + name, bytesOf('f', v));
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
  note((obj.empty() ? "/" : obj) + "\x02" + name, "s" + buf);
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
