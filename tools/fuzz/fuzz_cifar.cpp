// Fuzzes the CIFAR-10 binary-batch reader. Input: up to three batch files separated by kSplit,
// each written to a scratch file. Bad input must be a DataError naming a batch file.
#include "FuzzUtil.h"
#include "data/Dataset.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = swfuzz::split(data, size, 3);
  std::vector<std::string> files;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0 && parts[i].empty()) break;  // fewer files: the first always exists (it may be empty)
    files.push_back(swfuzz::scratch() + "/data_batch_" + std::to_string(i + 1) + ".bin");
    swfuzz::writeFile(files.back(), parts[i]);
  }
  const int64_t limit = size > 0 && data[0] == 0xff ? 1 : 0;
  swfuzz::expect([&] { (void)sw::loadCifar10(files, limit); },
                 {files[0], files.size() > 1 ? files[1] : files[0], files.back()});
  return 0;
}
