// JSON-lines metrics log.
#include "coord/Metrics.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/Error.h"

namespace sw {
namespace {
std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os.precision(8);
  os << v;
  return os.str();
}
}  // namespace

std::string MetricsRecord::json() const {
  std::ostringstream os;
  os << "{\"epoch\": " << epoch << ", \"step\": " << step << ", \"split\": \"" << split
     << "\", \"loss\": " << num(loss) << ", \"acc\": " << num(acc)
     << ", \"samples_per_s\": " << num(samplesPerSec) << ", \"wall_s\": " << num(wallSec);
  for (const auto& [k, v] : extra) os << ", \"" << k << "\": " << num(v);
  os << "}";
  return os.str();
}

MetricsLog::MetricsLog(const std::string& path, int64_t keepBytes) : path_(path) {
  if (keepBytes >= 0 && std::filesystem::exists(path)) {
    std::error_code ec;
    std::filesystem::resize_file(path, static_cast<uintmax_t>(keepBytes), ec);
    if (ec) throw IoError(path + ": cannot truncate metrics log: " + ec.message());
  }
  f_ = std::fopen(path.c_str(), "a");
  if (!f_) throw IoError(path + ": cannot open metrics log");
}

MetricsLog::~MetricsLog() {
  if (f_) std::fclose(f_);
}

void MetricsLog::write(const MetricsRecord& r) {
  if (!f_) return;
  std::string line = r.json() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    throw IoError(path_ + ": write failed");
}

int64_t MetricsLog::bytes() const {
  if (!f_) return 0;
  return static_cast<int64_t>(std::ftell(f_));
}

}  // namespace sw
