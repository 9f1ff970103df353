// Auxiliary-head construction from its architecture string, and the input-only backward.
#include "nn/AuxHead.h"

#include "core/Error.h"
#include "nn/BatchNorm.h"
#include "nn/Conv.h"
#include "nn/Elementwise.h"
#include "nn/Linear.h"
#include "nn/Pool.h"

namespace sw {

std::string auxArchFor(const std::string& arch, const Shape& sample) {
  if (arch != "auto") return arch;
  return sample.rank() == 3 ? "conv128_bn_conv64_bn_gbpl_fc" : "fc";
}

std::unique_ptr<Sequential> buildAuxHead(Backend& be, const std::string& requested, const Shape& sample,
                                         int64_t classes, Rng& rng, const std::string& key) {
  const std::string arch = auxArchFor(requested, sample);
  auto bad = [&](const std::string& why) {
    return ConfigError(key + " = '" + arch + "': " + why + " (tokens: convN, bn, gbpl, fc; e.g. conv128_bn_gbpl_fc)");
  };
  std::vector<std::string> tokens;
  for (size_t a = 0;;) {  // keeps empty tokens ("gbpl__fc", "fc_") so they are rejected
    const size_t b = arch.find('_', a);
    tokens.push_back(arch.substr(a, b == std::string::npos ? std::string::npos : b - a));
    if (b == std::string::npos) break;
    a = b + 1;
  }
  if (arch.empty()) throw bad("empty architecture");
  auto head = std::make_unique<Sequential>(be);
  std::vector<int64_t> d{1};
  for (int64_t v : sample.dims()) d.push_back(v);
  Shape cur(d);  // shape of one sample with a batch of 1
  int convs = 0;
  bool lastWasConv = false;  // the previous token was a conv (its ReLU not yet added)
  auto closeConv = [&] {
    if (lastWasConv) head->add(std::make_unique<Activation>(be, Act::kRelu), "relu" + std::to_string(convs));
    lastWasConv = false;
  };
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (t.rfind("conv", 0) == 0) {
      closeConv();
      int64_t n = 0;
      try {
        size_t pos = 0;
        n = std::stoll(t.substr(4), &pos);
        if (pos != t.size() - 4) n = 0;
      } catch (...) {
        n = 0;
      }
      if (n <= 0) throw bad("'" + t + "' needs a positive channel count, e.g. conv64");
      if (cur.rank() != 4) throw bad("'" + t + "' needs image features (C,H,W), got " + cur.str());
      ++convs;
      head->add(std::make_unique<Conv2d>(be, ConvOpts{.in = cur[1], .out = n, .kernel = 3, .stride = 1, .pad = 1, .bias = true, .init = Init::kKaimingNormalFanOut}, rng),
                "conv" + std::to_string(convs));
      cur = Shape{1, n, cur[2], cur[3]};
      lastWasConv = true;
    } else if (t == "bn") {
      if (!lastWasConv || (i > 0 && tokens[i - 1] == "bn")) throw bad("'bn' must follow a conv");
      head->add(std::make_unique<BatchNorm>(be, cur[1]), "bn" + std::to_string(convs));
      // The conv's ReLU follows the batch norm.
    } else if (t == "gbpl") {
      closeConv();
      if (cur.rank() != 4) throw bad("'gbpl' needs image features (C,H,W), got " + cur.str());
      head->add(std::make_unique<AvgPool2d>(be, 0, 0), "gbpl");
      head->add(std::make_unique<Flatten>(be), "flatten");
      cur = Shape{1, cur[1]};
    } else if (t == "fc") {
      closeConv();
      if (cur.rank() != 2) throw bad("'fc' on image features needs a 'gbpl' before it (flatten without pooling is not supported)");
      head->add(std::make_unique<Linear>(be, cur[1], classes, true, rng), "fc");
      cur = Shape{1, classes};
    } else {
      throw bad("unknown token '" + t + "'");
    }
  }
  closeConv();
  if (cur.rank() != 2 || cur[1] != classes) throw bad("must end in 'fc' (class scores), ends with features " + cur.str());
  return head;
}

SkipParamGrads::SkipParamGrads(std::vector<Param*> ps) : ps_(std::move(ps)) {
  for (Param* p : ps_) p->skipGrad = true;
}

SkipParamGrads::~SkipParamGrads() {
  for (Param* p : ps_) p->skipGrad = false;
}

Tensor inputOnlyBackward(Model& m, const Tensor& dy, const Ctx& ctx, BlockRange r) {
  Ctx copy = ctx;
  SkipParamGrads skip(m.params(r, Aux::kExclude));
  return m.backward(dy, copy, r, InputGrad::kNeeded);
}

}  // namespace sw
