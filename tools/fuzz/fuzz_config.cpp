// Fuzzes the config parser: INI text (as a config file or a run directory's config.ini) plus
// command-line overrides. Input: INI text, then kSplit, then one "section.key=value" override per line.
// Bad input must be a ConfigError (an InputError). A config that parses must also survive the
// round trip resume depends on: its resolved text (iniText, written to DIR/config.ini and read by
// the other ranks and by --resume) parses again to the same resolved text.
#include <sstream>

#include "FuzzUtil.h"
#include "config/TrainConfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string> parts = swfuzz::split(data, size, 2);
  std::vector<std::string> overrides;
  std::istringstream is(parts[1]);
  for (std::string line; std::getline(is, line);)
    if (!line.empty()) overrides.push_back(line);
  if (overrides.size() > 64) return -1;  // keep runs short; more overrides add nothing new

  swfuzz::expect([&] {
    const sw::TrainConfig cfg = sw::parseConfigText(parts[0], "fuzz.ini", overrides);
    const std::string text = sw::iniText(cfg);
    std::string again;
    try {
      again = sw::iniText(sw::parseConfigText(text, "config.ini", {}));
    } catch (const std::exception& e) {
      swfuzz::finding("resolved config does not parse again", std::string(e.what()) + "\n--- resolved:\n" + text);
    }
    if (again != text) swfuzz::finding("resolved config changes on re-parse", "--- first:\n" + text + "\n--- again:\n" + again);
  });
  return 0;
}
