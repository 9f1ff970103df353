// The backprop family's config keys (see Options.h here; the key machinery is config/Keys.h).
#include <map>
#include <sstream>

#include "config/Keys.h"
#include "config/TrainConfig.h"
#include "core/Error.h"

namespace sw {

void addBackpropKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [dp]
      {"dp.bucket_mb", "25", "gradient allreduce bucket size in MiB (overlapped with backward)",
       [](TrainConfig& c, const std::string& v) { c.dp.bucketMb = toDouble("dp.bucket_mb", v, 0.001, 1e6); }},
  });
}

}  // namespace sw
