// The petra family's config keys (see Options.h here; the key machinery is config/Keys.h).
#include <map>
#include <sstream>

#include "config/Keys.h"
#include "config/TrainConfig.h"
#include "core/Error.h"

namespace sw {

void addPetraKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [petra]
      {"petra.synchronous", "false", "no delay: each micro-batch goes forward and backward through all stages before the next (backprop)",
       [](TrainConfig& c, const std::string& v) { c.petra.synchronous = toBool("petra.synchronous", v); }},
      {"petra.store_context", "false", "keep every layer's forward context until the backward (store-vjp; with delays: stashed weights too)",
       [](TrainConfig& c, const std::string& v) { c.petra.storeContext = toBool("petra.store_context", v); }},
      {"petra.store_input", "false", "keep each stage's input and recompute the forward in the backward (false: reversible blocks are inverted)",
       [](TrainConfig& c, const std::string& v) { c.petra.storeInput = toBool("petra.store_input", v); }},
      {"petra.store_params", "false", "keep the forward's weights for the backward (false: the backward uses the current weights)",
       [](TrainConfig& c, const std::string& v) { c.petra.storeParams = toBool("petra.store_params", v); }},
      {"petra.drain_every", "0", "mini-batches between pipeline drains (checkpoint/stop points; 0 = once per epoch)",
       [](TrainConfig& c, const std::string& v) { c.petra.drainEvery = int(toInt("petra.drain_every", v, 0, 1 << 30)); }},
  });
}

}  // namespace sw
