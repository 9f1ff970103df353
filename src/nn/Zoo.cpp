// Model zoo construction.
#include "nn/Zoo.h"

#include <set>

#include "nn/Reversible.h"

#include "core/Error.h"
#include "nn/BatchNorm.h"
#include "nn/Conv.h"
#include "nn/Elementwise.h"
#include "nn/Linear.h"
#include "nn/Pool.h"

namespace sw {
namespace {

float orDefault(float v, float d) { return v < 0.f ? d : v; }

void buildMlp(Model& m, const ModelSpec& s, Backend& be) {
  Rng& rng = m.initRng();
  int64_t in = m.sampleShape().numel();
  for (size_t i = 0; i < s.hidden.size(); ++i) {
    Sequential& b = m.addBlock("fc" + std::to_string(i + 1));
    if (i == 0) b.add(std::make_unique<Flatten>(be), "flatten");
    b.add(std::make_unique<Linear>(be, in, s.hidden[i], true, rng), "linear");
    if (s.batchnorm && s.name == "mlp_bn") b.add(std::make_unique<BatchNorm>(be, s.hidden[i]), "bn");
    b.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
    float p = orDefault(s.dropout, 0.f);
    if (p > 0) b.add(std::make_unique<Dropout>(be, p, &m.dropoutRng()), "dropout");
    in = s.hidden[i];
  }
  Sequential& h = m.addBlock("head");
  if (s.hidden.empty()) h.add(std::make_unique<Flatten>(be), "flatten");
  h.add(std::make_unique<Linear>(be, in, m.classes(), true, rng), "linear");
}

// Parle's LeNet (spec seed-parle.md 7.1): conv5(20)-BN-ReLU-maxpool3/3-drop, conv5(50)-BN-ReLU-
// maxpool2/2-drop, fc500-BN-ReLU-drop, fc10. Spatial 28 -> 24 -> 8 -> 4 -> 2.
void buildLenet(Model& m, const ModelSpec& s, Backend& be) {
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  const float p = orDefault(s.dropout, 0.25f);
  const int64_t c1 = s.width > 0 ? s.width : 20, c2 = c1 * 5 / 2, f = 500;
  auto convBlock = [&](Sequential& b, int64_t cin, int64_t cout, int64_t pool) {
    b.add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = cout, .kernel = 5}, rng), "conv");
    if (s.batchnorm) b.add(std::make_unique<BatchNorm>(be, cout), "bn");
    b.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
    b.add(std::make_unique<MaxPool2d>(be, pool, pool), "pool");
    if (p > 0) b.add(std::make_unique<Dropout>(be, p, &m.dropoutRng()), "dropout");
  };
  convBlock(m.addBlock("conv1"), in[0], c1, 3);
  convBlock(m.addBlock("conv2"), c1, c2, 2);
  Shape s2 = m.blockOutputShape(1, 1);
  Sequential& fc = m.addBlock("fc1");
  fc.add(std::make_unique<Flatten>(be), "flatten");
  fc.add(std::make_unique<Linear>(be, s2.perSample(), f, true, rng), "linear");
  if (s.batchnorm) fc.add(std::make_unique<BatchNorm>(be, f), "bn");
  fc.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  if (p > 0) fc.add(std::make_unique<Dropout>(be, p, &m.dropoutRng()), "dropout");
  m.addBlock("head").add(std::make_unique<Linear>(be, f, m.classes(), true, rng), "linear");
}

// DTP's simple_vgg (spec seed-dtp.md 1.1): 5 x [conv3x3 pad 1 + bias, ELU, maxpool 2], linear.
// model.depth = D < 5 keeps the first D conv blocks (a shallower net for small data sets; the
// head then flattens C x H/2^D x W/2^D features).
void buildSimpleVgg(Model& m, const ModelSpec& s, Backend& be) {
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  std::vector<int64_t> ch{128, 128, 256, 256, 512};
  if (s.width > 0)
    for (auto& c : ch) c = c * s.width / 128;
  if (s.depth < 0 || s.depth > 5)
    throw ConfigError("model.depth = " + std::to_string(s.depth) + ": simple_vgg has 1 to 5 conv blocks (0 = 5)");
  if (s.depth > 0) ch.resize(size_t(s.depth));
  const int64_t scale = int64_t(1) << ch.size();
  if (in[1] % scale != 0 || in[2] % scale != 0)
    throw ConfigError("model simple_vgg with " + std::to_string(ch.size()) + " pooling stages needs input sides divisible by " +
                      std::to_string(scale) + ", got " + std::to_string(in[1]) + "x" + std::to_string(in[2]) +
                      (ch.size() == 5 ? "; for 28x28 data set data.pad_to=32" : ""));
  int64_t cin = in[0];
  for (size_t k = 0; k < ch.size(); ++k) {
    Sequential& b = m.addBlock("conv" + std::to_string(k));
    b.add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = ch[k], .kernel = 3, .pad = 1}, rng), "conv");
    b.add(std::make_unique<Activation>(be, Act::kElu, 1.f), "elu");
    b.add(std::make_unique<MaxPool2d>(be, 2, 2), "pool");
    cin = ch[k];
  }
  Sequential& h = m.addBlock("head");
  h.add(std::make_unique<Flatten>(be), "flatten");
  h.add(std::make_unique<Linear>(be, cin * (in[1] / scale) * (in[2] / scale), m.classes(), true, rng), "linear");
}

// All-CNN-C as in Parle (spec seed-parle.md 7.2); the last 1x1 block keeps BN + ReLU.
void buildAllCnn(Model& m, const ModelSpec& s, Backend& be) {
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  const int64_t c1 = s.width > 0 ? s.width : 96, c2 = c1 * 2;
  const float d = orDefault(s.dropout, 0.5f), d0 = orDefault(s.inputDropout, 0.2f);
  auto B = [&](Sequential& b, const std::string& nm, int64_t cin, int64_t cout, int64_t k,
               int64_t stride) {
    b.add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = cout, .kernel = k, .stride = stride, .pad = k == 3 ? 1 : 0}, rng), nm + ".conv");
    b.add(std::make_unique<BatchNorm>(be, cout), nm + ".bn");
    b.add(std::make_unique<Activation>(be, Act::kRelu), nm + ".relu");
  };
  Sequential& b1 = m.addBlock("stage1");
  if (d0 > 0) b1.add(std::make_unique<Dropout>(be, d0, &m.dropoutRng()), "dropout_in");
  B(b1, "b1", in[0], c1, 3, 1);
  B(b1, "b2", c1, c1, 3, 1);
  B(b1, "b3", c1, c1, 3, 2);
  Sequential& b2 = m.addBlock("stage2");
  if (d > 0) b2.add(std::make_unique<Dropout>(be, d, &m.dropoutRng()), "dropout");
  B(b2, "b4", c1, c2, 3, 1);
  B(b2, "b5", c2, c2, 3, 1);
  B(b2, "b6", c2, c2, 3, 2);
  Sequential& b3 = m.addBlock("stage3");
  if (d > 0) b3.add(std::make_unique<Dropout>(be, d, &m.dropoutRng()), "dropout");
  B(b3, "b7", c2, c2, 3, 1);
  B(b3, "b8", c2, c2, 3, 1);
  B(b3, "b9", c2, m.classes(), 1, 1);
  Sequential& h = m.addBlock("head");
  h.add(std::make_unique<AvgPool2d>(be, 0, 0), "gap");
  h.add(std::make_unique<Flatten>(be), "flatten");
}

// torchvision residual shortcut: 1x1(s)-BN when the shape changes, else identity (null).
LayerPtr projection(Backend& be, Rng& rng, int64_t cin, int64_t cout, int64_t stride) {
  if (stride == 1 && cin == cout) return nullptr;
  auto s = std::make_unique<Sequential>(be);
  s->add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = cout, .kernel = 1, .stride = stride, .pad = 0, .bias = false, .init = Init::kKaimingNormalFanOut}, rng), "conv");
  s->add(std::make_unique<BatchNorm>(be, cout), "bn");
  return s;
}

// Global average pool, flatten, linear classifier: the head block of the ResNet family.
void addPoolHead(Model& m, Backend& be, Rng& rng, int64_t cin) {
  Sequential& h = m.addBlock("head");
  h.add(std::make_unique<AvgPool2d>(be, 0, 0), "gap");
  h.add(std::make_unique<Flatten>(be), "flatten");
  h.add(std::make_unique<Linear>(be, cin, m.classes(), true, rng), "fc");
}

// torchvision BasicBlock: conv3x3(s)-BN-ReLU-conv3x3-BN (+ shortcut 1x1(s)-BN), ReLU.
LayerPtr basicBlock(Backend& be, Rng& rng, int64_t cin, int64_t cout, int64_t stride) {
  auto main = std::make_unique<Sequential>(be);
  const Init ki = Init::kKaimingNormalFanOut;
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = cout, .kernel = 3, .stride = stride, .pad = 1, .bias = false, .init = ki}, rng), "conv1");
  main->add(std::make_unique<BatchNorm>(be, cout), "bn1");
  main->add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = cout, .out = cout, .kernel = 3, .stride = 1, .pad = 1, .bias = false, .init = ki}, rng), "conv2");
  main->add(std::make_unique<BatchNorm>(be, cout), "bn2");
  return std::make_unique<Residual>(be, std::move(main), projection(be, rng, cin, cout, stride), Act::kRelu);
}

// ResNet-18/34 with the CIFAR stem (conv3x3 64, BN, ReLU, no max-pool); one block per
// residual block, stem and head are blocks of their own (spec seed-interlocking.md 2.1).
void buildResnet(Model& m, const ModelSpec& s, Backend& be, std::vector<int> layers) {
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  const int64_t w = s.width > 0 ? s.width : 64;
  Sequential& stem = m.addBlock("stem");
  stem.add(std::make_unique<Conv2d>(be, ConvOpts{.in = in[0], .out = w, .kernel = 3, .stride = 1, .pad = 1, .bias = false, .init = Init::kKaimingNormalFanOut}, rng), "conv");
  stem.add(std::make_unique<BatchNorm>(be, w), "bn");
  stem.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  int64_t cin = w;
  for (size_t g = 0; g < layers.size(); ++g) {
    const int64_t cout = w << g;
    for (int b = 0; b < layers[g]; ++b) {
      const int64_t stride = (g > 0 && b == 0) ? 2 : 1;
      m.addBlock("layer" + std::to_string(g + 1) + "." + std::to_string(b))
          .add(basicBlock(be, rng, cin, cout, stride), "block");
      cin = cout;
    }
  }
  addPoolHead(m, be, rng, cin);
}

// torchvision Bottleneck (ResNet v1.5: stride on the 3x3): 1x1-BN-ReLU-3x3(s)-BN-ReLU-1x1(4w)-BN
// (+ shortcut 1x1(s)-BN), ReLU.
LayerPtr bottleneck(Backend& be, Rng& rng, int64_t cin, int64_t w, int64_t stride) {
  const Init ki = Init::kKaimingNormalFanOut;
  const int64_t cout = 4 * w;
  auto main = std::make_unique<Sequential>(be);
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = w, .kernel = 1, .stride = 1, .pad = 0, .bias = false, .init = ki}, rng), "conv1");
  main->add(std::make_unique<BatchNorm>(be, w), "bn1");
  main->add(std::make_unique<Activation>(be, Act::kRelu), "relu1");
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = w, .out = w, .kernel = 3, .stride = stride, .pad = 1, .bias = false, .init = ki}, rng), "conv2");
  main->add(std::make_unique<BatchNorm>(be, w), "bn2");
  main->add(std::make_unique<Activation>(be, Act::kRelu), "relu2");
  main->add(std::make_unique<Conv2d>(be, ConvOpts{.in = w, .out = cout, .kernel = 1, .stride = 1, .pad = 0, .bias = false, .init = ki}, rng), "conv3");
  main->add(std::make_unique<BatchNorm>(be, cout), "bn3");
  return std::make_unique<Residual>(be, std::move(main), projection(be, rng, cin, cout, stride), Act::kRelu);
}

// ResNet-50 as the SpecTrain system trains it on CIFAR: the ImageNet stem (7x7/2, BN, ReLU,
// max-pool 3x3/2) on 32x32 input, torchvision bottlenecks [3, 4, 6, 3]; stem, 16 blocks, head.
void buildResnet50(Model& m, const ModelSpec& s, Backend& be) {
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  const int64_t w = s.width > 0 ? s.width : 64;
  Sequential& stem = m.addBlock("stem");
  stem.add(std::make_unique<Conv2d>(be, ConvOpts{.in = in[0], .out = w, .kernel = 7, .stride = 2, .pad = 3, .bias = false, .init = Init::kKaimingNormalFanOut}, rng), "conv");
  stem.add(std::make_unique<BatchNorm>(be, w), "bn");
  stem.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  stem.add(std::make_unique<MaxPool2d>(be, 3, 2, 1), "maxpool");
  const std::vector<int> layers{3, 4, 6, 3};
  int64_t cin = w;
  for (size_t g = 0; g < layers.size(); ++g) {
    const int64_t width = w << g;
    for (int b = 0; b < layers[g]; ++b) {
      const int64_t stride = (g > 0 && b == 0) ? 2 : 1;
      m.addBlock("layer" + std::to_string(g + 1) + "." + std::to_string(b)).add(bottleneck(be, rng, cin, width, stride), "block");
      cin = 4 * width;
    }
  }
  addPoolHead(m, be, rng, cin);
}

// VGG-16 without batch norm, as PipeDream/SpecTrain partition it (16 blocks): blocks 0-12 are
// the conv3x3+ReLU layers (max-pool attached to blocks 1, 3, 6, 9, 12; block 12 also pools
// adaptively to 7x7), blocks 13-15 the classifier FC-ReLU-Dropout, FC-ReLU-Dropout, FC.
// model.width scales the 64..512 conv widths (width/64) and the 4096 classifier width.
void buildVgg16(Model& m, const ModelSpec& s, Backend& be) {
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  const int64_t w = s.width > 0 ? s.width : 64;
  const float d = s.dropout >= 0 ? s.dropout : 0.5f;
  const std::vector<int64_t> ch{w, w, 2 * w, 2 * w, 4 * w, 4 * w, 4 * w, 8 * w, 8 * w, 8 * w, 8 * w, 8 * w, 8 * w};
  const std::set<size_t> pool{1, 3, 6, 9, 12};
  int64_t cin = in[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    Sequential& b = m.addBlock("conv" + std::to_string(i));
    b.add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = ch[i], .kernel = 3, .stride = 1, .pad = 1, .bias = true, .init = Init::kKaimingNormalFanOutZeroBias}, rng), "conv");
    b.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
    if (pool.count(i)) b.add(std::make_unique<MaxPool2d>(be, 2, 2), "pool");
    if (i == 12) {
      b.add(std::make_unique<AdaptiveAvgPool2d>(be, 7, 7), "avgpool");
      b.add(std::make_unique<Flatten>(be), "flatten");
    }
    cin = ch[i];
  }
  const int64_t fc = 64 * w;  // 4096 at the default width
  Sequential& f1 = m.addBlock("fc1");
  f1.add(std::make_unique<Linear>(be, cin * 49, fc, true, rng, Init::kNormal001ZeroBias), "fc");
  f1.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  if (d > 0) f1.add(std::make_unique<Dropout>(be, d, &m.dropoutRng()), "dropout");
  Sequential& f2 = m.addBlock("fc2");
  f2.add(std::make_unique<Linear>(be, fc, fc, true, rng, Init::kNormal001ZeroBias), "fc");
  f2.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  if (d > 0) f2.add(std::make_unique<Dropout>(be, d, &m.dropoutRng()), "dropout");
  m.addBlock("fc3").add(std::make_unique<Linear>(be, fc, m.classes(), true, rng, Init::kNormal001ZeroBias), "fc");
}

// RevNet (seed-petra.md 2.2-2.5): conv biases, PyTorch default init. Per-stream widths
// w, 2w, 4w, 8w (w = 64: total channels 128..1024). Blocks: stem | reversible couplings and
// non-reversible downsampling blocks, one per ResNet basic block | head.
std::unique_ptr<Sequential> convBnRelu(Backend& be, Rng& rng, int64_t cin, int64_t cout, int64_t k, int64_t stride, bool relu) {
  auto q = std::make_unique<Sequential>(be);
  q->add(std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = cout, .kernel = k, .stride = stride, .pad = k / 2, .bias = true}, rng), "conv");
  q->add(std::make_unique<BatchNorm>(be, cout), "bn");
  if (relu) q->add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  return q;
}

void buildRevnet(Model& m, const ModelSpec& s, Backend& be, std::vector<int> layers) {
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  const int64_t w = s.width > 0 ? s.width : 64;
  m.addBlock("stem").add(convBnRelu(be, rng, in[0], 2 * w, 3, 1, true), "conv");
  int64_t c = w;  // per stream
  for (size_t g = 0; g < layers.size(); ++g) {
    for (int b = 0; b < layers[g]; ++b) {
      const std::string name = "layer" + std::to_string(g + 1) + "." + std::to_string(b);
      if (g > 0 && b == 0) {
        auto a = convBnRelu(be, rng, c, 2 * c, 3, 2, true);
        auto bb = convBnRelu(be, rng, 2 * c, 2 * c, 3, 1, true);
        auto sc = convBnRelu(be, rng, c, 2 * c, 1, 2, false);
        m.addBlock(name).add(std::make_unique<RevDownsample>(be, std::move(a), std::move(bb), std::move(sc)), "down");
        c *= 2;
      } else {
        auto f = std::make_unique<Sequential>(be);
        f->add(convBnRelu(be, rng, c, c, 3, 1, true), "1");
        f->add(convBnRelu(be, rng, c, c, 3, 1, true), "2");
        m.addBlock(name).add(std::make_unique<RevCoupling>(be, std::move(f)), "rev");
      }
    }
  }
  addPoolHead(m, be, rng, 2 * c);  // concatenated streams
}

// Wide ResNet WRN-d-k as Parle's models.wideresnet builds it (spec seed-parle.md 7.3): a bias-free
// conv3x3 to 16 channels; 3 groups of N = (d-4)/6 pre-activation blocks of widths 16k, 32k, 64k
// (first strides 1, 2, 2); BN-ReLU-global average pool-linear. Block: BN-ReLU-conv3x3(s)-BN-ReLU-
// dropout-conv3x3, convs bias-free; the shortcut is the identity when the widths match, else a
// bias-free 1x1 conv (stride s) of the RAW block input (the canonical WRN code takes the
// pre-activated input; Parle's does not). Init: convs N(0, 2/(k k C_out)), BN 1/0, linear weight
// PyTorch default, linear bias 0. One stage block per residual block.
void buildWrn(Model& m, const ModelSpec& s, Backend& be, int64_t depth, int64_t k) {
  if (depth < 10 || (depth - 4) % 6 != 0)
    throw ConfigError("model.depth = " + std::to_string(depth) + ": a wide ResNet has depth 6N + 4 (10, 16, 22, 28, ...)");
  Rng& rng = m.initRng();
  const Shape& in = m.sampleShape();
  const Init ki = Init::kKaimingNormalFanOut;
  const float p = orDefault(s.dropout, 0.25f);
  auto conv = [&](int64_t cin, int64_t cout, int64_t kernel, int64_t stride) {
    return std::make_unique<Conv2d>(be, ConvOpts{.in = cin, .out = cout, .kernel = kernel, .stride = stride,
                                                 .pad = kernel / 2, .bias = false, .init = ki}, rng);
  };
  m.addBlock("stem").add(conv(in[0], 16, 3, 1), "conv");
  int64_t cin = 16;
  for (int g = 0; g < 3; ++g) {
    const int64_t w = (16 << g) * k;
    for (int64_t b = 0; b < (depth - 4) / 6; ++b) {
      const int64_t stride = (g > 0 && b == 0) ? 2 : 1;
      auto main = std::make_unique<Sequential>(be);
      main->add(std::make_unique<BatchNorm>(be, cin), "bn1");
      main->add(std::make_unique<Activation>(be, Act::kRelu), "relu1");
      main->add(conv(cin, w, 3, stride), "conv1");
      main->add(std::make_unique<BatchNorm>(be, w), "bn2");
      main->add(std::make_unique<Activation>(be, Act::kRelu), "relu2");
      if (p > 0) main->add(std::make_unique<Dropout>(be, p, &m.dropoutRng()), "dropout");
      main->add(conv(w, w, 3, 1), "conv2");
      LayerPtr sc;
      if (cin != w) sc = conv(cin, w, 1, stride);
      m.addBlock("group" + std::to_string(g + 1) + "." + std::to_string(b))
          .add(std::make_unique<Residual>(be, std::move(main), std::move(sc), Act::kIdentity), "block");
      cin = w;
    }
  }
  Sequential& h = m.addBlock("head");
  h.add(std::make_unique<BatchNorm>(be, cin), "bn");
  h.add(std::make_unique<Activation>(be, Act::kRelu), "relu");
  h.add(std::make_unique<AvgPool2d>(be, 0, 0), "gap");
  h.add(std::make_unique<Flatten>(be), "flatten");
  auto fc = std::make_unique<Linear>(be, cin, m.classes(), true, rng);
  be.fill(fc->bias().value, 0.f);
  h.add(std::move(fc), "fc");
}

}  // namespace

std::vector<std::string> modelNames() {
  return {"mlp", "mlp_bn", "lenet", "simple_vgg", "allcnn", "resnet18", "resnet34", "resnet50",
          "revnet18", "revnet34", "vgg16", "wrn", "wrn16_4", "wrn28_10"};
}

std::unique_ptr<Model> buildModel(Backend& be, const ModelSpec& spec, const Shape& sample,
                                  int64_t classes, uint64_t seed) {
  if (classes < 2) throw ConfigError("model needs at least 2 classes, got " + std::to_string(classes));
  auto m = std::make_unique<Model>(be, sample, classes, seed);
  const std::string& n = spec.name;
  const bool image = sample.rank() == 3;
  if (n != "mlp" && n != "mlp_bn" && !image)
    throw ConfigError("model." + n + " needs image input (C,H,W), got " + sample.str());
  if (spec.depth != 0 && n != "wrn" && n != "simple_vgg" && n != "wrn16_4" && n != "wrn28_10")
    throw ConfigError("model.depth = " + std::to_string(spec.depth) + ": only model.name = wrn or simple_vgg takes a depth, not " + n);
  if (n == "mlp" || n == "mlp_bn") buildMlp(*m, spec, be);
  else if (n == "lenet") {
    if (sample[1] < 20 || sample[2] < 20)
      throw ConfigError("model lenet needs at least 20x20 input, got " + sample.str());
    buildLenet(*m, spec, be);
  } else if (n == "simple_vgg") buildSimpleVgg(*m, spec, be);
  else if (n == "allcnn") buildAllCnn(*m, spec, be);
  else if (n == "resnet18") buildResnet(*m, spec, be, {2, 2, 2, 2});
  else if (n == "resnet34") buildResnet(*m, spec, be, {3, 4, 6, 3});
  else if (n == "resnet50") buildResnet50(*m, spec, be);
  else if (n == "revnet18") buildRevnet(*m, spec, be, {2, 2, 2, 2});
  else if (n == "revnet34") buildRevnet(*m, spec, be, {3, 4, 6, 3});
  else if (n == "vgg16") buildVgg16(*m, spec, be);
  else if (n == "wrn") buildWrn(*m, spec, be, spec.depth > 0 ? spec.depth : 28, spec.width > 0 ? spec.width : 10);
  else if (n == "wrn16_4" || n == "wrn28_10") {
    if (spec.depth != 0 || spec.width != 0)
      throw ConfigError("model.depth / model.width: model.name = " + n + " fixes them (use model.name = wrn)");
    if (n == "wrn16_4") buildWrn(*m, spec, be, 16, 4);
    else buildWrn(*m, spec, be, 28, 10);
  } else {
    std::string all;
    for (auto& s : modelNames()) all += (all.empty() ? "" : ", ") + s;
    throw ConfigError("model.name: unknown model '" + n + "' (expected one of: " + all + ")");
  }
  // Validate the whole chain of shapes now, so a bad input size fails before training.
  try {
    (void)m->blockOutputShape(m->numBlocks() - 1, 1);
  } catch (const ShapeError& e) {
    throw ConfigError("model." + n + " cannot take input " + sample.str() + ": " + e.what());
  }
  return m;
}

}  // namespace sw
