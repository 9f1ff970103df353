// HDF5 data sets (our own format, written by tools/convert_h5.py): `images` [N,C,H,W] or [N,H,W]
// as uint8 or float, `labels` [N] integer, optional `layout` = "nhwc" on the images and `classes` on
// the root. HDF5 I/O errors (IoError from io/H5) become DataError: a bad data file is user input.
#include <hdf5.h>

#include <algorithm>

#include "core/Error.h"
#include "data/Dataset.h"
#include "io/H5.h"

namespace sw {
namespace {

// More classes than any real data set has (the model's output layer is sized by it).
constexpr int64_t kMaxClasses = int64_t(1) << 20;

struct ElemType {
  H5T_class_t cls = H5T_NO_CLASS;
  size_t size = 0;
  H5T_sign_t sign = H5T_SGN_ERROR;
};

// io/H5 reports only the type class; pixel storage also needs width and signedness.
ElemType elemType(const h5::File& f, const std::string& obj) {
  h5::Handle d(H5Dopen2(f.id(), obj.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.valid()) throw DataError(f.path() + ": cannot open dataset '" + obj + "'");
  h5::Handle t(H5Dget_type(d.get()), H5Tclose);
  ElemType e;
  e.cls = H5Tget_class(t.get());
  e.size = H5Tget_size(t.get());
  if (e.cls == H5T_INTEGER) e.sign = H5Tget_sign(t.get());
  return e;
}

std::string members(const h5::File& f) {
  std::string s;
  for (const std::string& n : f.list("/")) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

// [N,H,W,C] -> [N,C,H,W], one sample at a time so the scratch copy stays small.
template <class T>
void nhwcToNchw(std::vector<T>& v, int64_t n, int64_t c, int64_t hw) {
  std::vector<T> tmp(static_cast<size_t>(c * hw));
  for (int64_t i = 0; i < n; ++i) {
    T* s = v.data() + i * c * hw;
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t k = 0; k < c; ++k) tmp[k * hw + p] = s[p * c + k];
    std::copy(tmp.begin(), tmp.end(), s);
  }
}

Dataset load(const std::string& path, const std::string& imagesKey, const std::string& labelsKey,
             int64_t limit) {
  h5::File f(path, h5::Access::kRead);
  for (const std::string* key : {&imagesKey, &labelsKey})
    if (!f.exists(*key))
      throw DataError(path + ": missing dataset '" + *key + "' (the file holds: " + members(f) + ")");

  const std::vector<int64_t> dims = f.shape(imagesKey);
  if (dims.size() != 3 && dims.size() != 4)
    throw DataError(path + ": dataset '" + imagesKey + "' has rank " + std::to_string(dims.size()) +
                    ", expected [N,C,H,W], [N,H,W,C] (layout=nhwc) or [N,H,W]");
  bool nhwc = false;
  if (f.hasAttr(imagesKey, "layout")) {
    const std::string layout = f.attrString(imagesKey, "layout");
    if (layout == "nhwc") nhwc = true;
    else if (layout != "nchw")
      throw DataError(path + ": attribute layout = '" + layout + "' on '" + imagesKey +
                      "', expected 'nchw' or 'nhwc'");
  }
  const int64_t n = dims[0];
  int64_t c = 1, h = dims[1], w = dims[2];
  if (dims.size() == 4) {
    if (nhwc) h = dims[1], w = dims[2], c = dims[3];
    else c = dims[1], h = dims[2], w = dims[3];
  }
  if (n == 0) throw DataError(path + ": dataset '" + imagesKey + "' is empty (0 samples)");
  if (c <= 0 || h <= 0 || w <= 0)
    throw DataError(path + ": dataset '" + imagesKey + "' has an empty sample shape");
  // The shape's product must fit in int64 (HDF5 dimensions are unsigned: one above 2^63 reads as
  // negative here) and the file must hold the data it claims (IoError from io/H5, a DataError
  // below): then n * c * h * w and every product below fit too, and nothing is allocated for data
  // that is not there.
  f.storedElements(imagesKey);

  const std::vector<int64_t> ldims = f.shape(labelsKey);
  if (ldims.size() != 1)
    throw DataError(path + ": dataset '" + labelsKey + "' has rank " + std::to_string(ldims.size()) +
                    ", expected [N]");
  if (ldims[0] != n)
    throw DataError(path + ": '" + imagesKey + "' has " + std::to_string(n) + " samples but '" + labelsKey +
                    "' has " + std::to_string(ldims[0]));
  if (elemType(f, labelsKey).cls != H5T_INTEGER)
    throw DataError(path + ": dataset '" + labelsKey + "' must hold integers");
  f.storedElements(labelsKey);

  const int64_t take = limit > 0 ? std::min(limit, n) : n;
  const int64_t per = c * h * w;
  Dataset d;
  d.source = path;
  d.sample = Shape{c, h, w};
  const ElemType et = elemType(f, imagesKey);
  if (et.cls == H5T_FLOAT) {
    d.f32.resize(static_cast<size_t>(take * per));
    f.readRowsF32(imagesKey, 0, take, d.f32.data());
    if (nhwc) nhwcToNchw(d.f32, take, c, h * w);
  } else if (et.cls == H5T_INTEGER && et.size == 1 && et.sign == H5T_SGN_NONE) {
    d.u8.resize(static_cast<size_t>(take * per));
    f.readRowsU8(imagesKey, 0, take, d.u8.data());
    if (nhwc) nhwcToNchw(d.u8, take, c, h * w);
  } else {
    // Wider integers would be clipped silently by HDF5's conversion to uint8: refuse instead.
    throw DataError(path + ": dataset '" + imagesKey +
                    "' must be uint8 (pixels 0..255) or float; convert it with tools/convert_h5.py");
  }

  d.labels.resize(static_cast<size_t>(take));
  f.readRowsI32(labelsKey, 0, take, d.labels.data());
  int32_t maxLabel = -1;
  for (size_t i = 0; i < d.labels.size(); ++i) {
    if (d.labels[i] < 0)
      throw DataError(path + ": label " + std::to_string(d.labels[i]) + " of sample " + std::to_string(i) +
                      " is negative");
    // HDF5 clips wider labels to int32 when it converts them: anything this large is not a class.
    if (d.labels[i] >= kMaxClasses)
      throw DataError(path + ": label " + std::to_string(d.labels[i]) + " of sample " + std::to_string(i) +
                      " is out of range: at most " + std::to_string(kMaxClasses) + " classes");
    maxLabel = std::max(maxLabel, d.labels[i]);
  }
  if (f.hasAttr("/", "classes")) {
    d.classes = f.attrInt("/", "classes");
    if (d.classes <= 0 || d.classes > kMaxClasses)
      throw DataError(path + ": attribute classes = " + std::to_string(d.classes) + " must be in [1, " +
                      std::to_string(kMaxClasses) + "]");
    if (maxLabel >= d.classes)
      throw DataError(path + ": label " + std::to_string(maxLabel) + " is out of range [0, " +
                      std::to_string(d.classes) + ") given by the 'classes' attribute");
  } else {
    // Without the attribute a (limited) split may miss the top classes; convert_h5.py always writes it.
    d.classes = maxLabel + 1;
  }
  return d;
}

}  // namespace

Dataset loadHdf5(const std::string& path, const std::string& imagesKey, const std::string& labelsKey,
                 int64_t limit) {
  try {
    return load(path, imagesKey, labelsKey, limit);
  } catch (const IoError& e) {
    // io/H5 messages already start with the path.
    throw DataError(e.what());
  }
}

}  // namespace sw
