// Fuzzes the IDX (MNIST / Fashion-MNIST) reader. Input: the images file, kSplit, the labels file
// (either may be gzipped: the reader inflates both forms). loadIdx takes paths, so both parts are
// written to scratch files. Bad input must be a DataError naming one of the two files.
#include "FuzzUtil.h"
#include "data/Dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = swfuzz::split(data, size, 2);
  const std::string images = swfuzz::scratch() + "/images-idx3-ubyte", labels = swfuzz::scratch() + "/labels-idx1-ubyte";
  swfuzz::writeFile(images, parts[0]);
  swfuzz::writeFile(labels, parts[1]);
  // The last byte picks a sample limit (0 = all) now and then: the limited path reads less.
  const int64_t limit = size > 0 && data[size - 1] < 8 ? data[size - 1] : 0;
  swfuzz::expect([&] { (void)sw::loadIdx(images, labels, limit); }, {images, labels});
  return 0;
}
