// The interlocking family's config keys (see Options.h here; the key machinery is config/Keys.h).
#include <map>
#include <sstream>

#include "config/Keys.h"
#include "config/TrainConfig.h"
#include "core/Error.h"

namespace sw {

void addInterlockingKeys(std::vector<Key>& k) {
  k.insert(k.end(), {
      // [interlocking]
      {"interlocking.n", "2", "train.algo = interlocking: n-wise, gradients cross n-1 component boundaries (1 = local, 2 = pairwise, 3 = 3-wise, >= components = global)",
       [](TrainConfig& c, const std::string& v) { c.interlocking.n = int(toInt("interlocking.n", v, 1, 1 << 20)); }},
      {"interlocking.pairwise_mode", "next_only", "pairwise variant: next_only (component c trains on L_{c+1}) | sum (L_c + L_{c+1}) | mean",
       [](TrainConfig& c, const std::string& v) { c.interlocking.pairwiseMode = oneOf("interlocking.pairwise_mode", v, {"next_only", "sum", "mean"}); }},
      {"interlocking.aux", "auto", "auxiliary head of every non-last component: '_'-separated convN, bn, gbpl, fc (or a comma list, one per component but the last); auto = conv128_bn_conv64_bn_gbpl_fc (the reference's) on image features, fc on flat features",
       [](TrainConfig& c, const std::string& v) {
         if (v.empty()) bad("interlocking.aux", v, "an architecture such as conv128_bn_conv64_bn_gbpl_fc or gbpl_fc");
         c.interlocking.aux = v;
       }},
      {"interlocking.blocks_per_component", "", "component split as block counts ending in rest, e.g. 5,4,4,rest (empty = the pipeline stages)",
       [](TrainConfig& c, const std::string& v) { c.interlocking.blocksPerComponent = v; }},
      {"interlocking.drain_every", "64", "mini-batches between pipeline drains (checkpoint/stop points; 0 = once per epoch)",
       [](TrainConfig& c, const std::string& v) { c.interlocking.drainEvery = int(toInt("interlocking.drain_every", v, 0, 1 << 30)); }},
  });
}

}  // namespace sw
