// Fuzzes the HDF5 data-set reader (images [N,C,H,W] / [N,H,W,C] / [N,H,W], labels [N], layout and
// classes attributes). The input is written as a .h5 scratch file. Bad input must be a DataError
// naming the file. HDF5 itself is not instrumented: a crash inside libhdf5 that no check of ours
// before the call can avoid is reported as such (see README.md).
#include "FuzzUtil.h"
#include "data/Dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = swfuzz::scratch() + "/data.h5";
  swfuzz::writeFile(path, std::string_view(reinterpret_cast<const char*>(data), size));
  swfuzz::expect([&] { (void)sw::loadHdf5(path, "images", "labels", 0); }, {path});
  return 0;
}
