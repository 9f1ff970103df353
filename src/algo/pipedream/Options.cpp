// The pipedream family's config keys (see Options.h here; the key machinery is config/Keys.h).
#include <map>
#include <sstream>

#include "config/Keys.h"
#include "config/TrainConfig.h"
#include "core/Error.h"

namespace sw {

void addPipeDreamKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [pipedream]
      {"pipedream.vertical_sync", "false", "every stage uses the weight version stage 0 used for a micro-batch",
       [](TrainConfig& c, const std::string& v) { c.pipedream.verticalSync = toBool("pipedream.vertical_sync", v); }},
      {"pipedream.drain_every", "64", "mini-batches between pipeline drains (checkpoint/stop points; 0 = once per epoch)",
       [](TrainConfig& c, const std::string& v) { c.pipedream.drainEvery = int(toInt("pipedream.drain_every", v, 0, 1 << 30)); }},
      {"pipedream.stash", "true", "weight stashing: a backward uses its forward's weights (false: the current ones, SpecTrain's 'vanilla' MP)",
       [](TrainConfig& c, const std::string& v) { c.pipedream.stash = toBool("pipedream.stash", v); }},
      // [spectrain]
      {"spectrain.version", "1", "1: forward and backward on separately predicted weights; 2: stashed weights with an (S-k)-fold step",
       [](TrainConfig& c, const std::string& v) { c.spectrain.version = int(toInt("spectrain.version", v, 1, 2)); }},
      {"spectrain.max_distance", "-1", "version 1: cap on the prediction distance in steps (-1 = none, 0 = no prediction)",
       [](TrainConfig& c, const std::string& v) { c.spectrain.maxDistance = int(toInt("spectrain.max_distance", v, -1, 1 << 20)); }},
  });
}

}  // namespace sw
