// Config parsing: INI sections, overrides, unknown keys and bad values named in the error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "config/TrainConfig.h"
#include "core/Error.h"

namespace sw {
namespace {
std::string writeIni(const std::string& text) {
  std::string p = ::testing::TempDir() + "/cfg_" + std::to_string(::getpid()) + ".ini";
  std::ofstream(p) << text;
  return p;
}
std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Config, DefaultsIniAndOverrides) {
  auto p = writeIni("[train]\nepochs = 4\n[optim]\nlr = 0.2\nname = adam\n");
  TrainConfig c = parseConfig(p, {"optim.lr=0.3", "--train.batch_size=32", "model.hidden=8,4"});
  EXPECT_EQ(c.train.epochs, 4);
  EXPECT_FLOAT_EQ(c.lr.lr, 0.3f);
  EXPECT_EQ(c.optim.kind, OptimKind::kAdam);
  EXPECT_EQ(c.train.batchSize, 32);
  EXPECT_EQ(c.model.hidden, (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(c.lr.batchSize, 32);
  // The resolved text parses back to the same config.
  TrainConfig d = parseConfigText(iniText(c), "resolved", {});
  EXPECT_EQ(iniText(d), iniText(c));
}

// This session's keys reach their sections; bad values are named.
TEST(Config, ScheduleConvolutionAndTransportKeys) {
  TrainConfig c = parseConfig("", {"optim.schedule=poly", "optim.poly_reach_zero=false", "optim.poly_per_iteration=true",
                                   "runtime.cpu_conv=im2col", "runtime.nccl_p2p=false"});
  EXPECT_FALSE(c.lr.polyReachZero);
  EXPECT_TRUE(c.lr.polyPerIteration);
  EXPECT_EQ(c.runtime.cpuConv, "im2col");
  EXPECT_FALSE(c.runtime.ncclP2p);
  // NCCL point-to-point is refused with the reason (tag-free, issue-ordered, receives posted early).
  EXPECT_NE(errorOf([] { parseConfig("", {"runtime.nccl_p2p=true"}); }).find("runtime.nccl_p2p = true is not supported"),
            std::string::npos);
  EXPECT_NE(errorOf([] { parseConfig("", {"runtime.cpu_conv=fast"}); }).find("runtime.cpu_conv"), std::string::npos);
  EXPECT_NE(errorOf([] { parseConfig("", {"optim.poly_per_iteration=maybe"}); }).find("optim.poly_per_iteration"),
            std::string::npos);
}

TEST(Config, EveryShippedConfigParses) {
  // A key renamed in Options.cpp must not silently break a config users start from.
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(SW_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".ini") continue;
    EXPECT_NO_THROW(parseConfig(e.path().string(), {})) << e.path();
    ++n;
  }
  EXPECT_GE(n, 20);
}

TEST(Config, UnknownKeysAndBadValuesAreNamed) {
  auto p = writeIni("[optim]\nbogus = 1\n");
  EXPECT_NE(errorOf([&] { parseConfig(p, {}); }).find("optim.bogus"), std::string::npos);
  EXPECT_NE(errorOf([&] { parseConfig(p, {}); }).find(p), std::string::npos);
  EXPECT_NE(errorOf([] { parseConfig("", {"train.nope=3"}); }).find("train.nope"), std::string::npos);
  std::string e = errorOf([] { parseConfig("", {"optim.lr=-0.1"}); });
  EXPECT_NE(e.find("optim.lr"), std::string::npos);
  EXPECT_NE(e.find("-0.1"), std::string::npos);
  EXPECT_NE(errorOf([] { parseConfig("", {"train.epochs=abc"}); }).find("train.epochs"), std::string::npos);
  EXPECT_NE(errorOf([] { parseConfig("", {"model.name=vgg99"}); }).find("model.name"), std::string::npos);
  EXPECT_NE(errorOf([] { parseConfig("/nonexistent/x.ini", {}); }).find("/nonexistent/x.ini"), std::string::npos);
  EXPECT_NE(errorOf([] { parseConfig("", {"data.mean=0.5", "data.std=0.2,0.3"}); }).find("data.mean"), std::string::npos);
}

// Fuzzing (tools/fuzz/fuzz_config): a line naming Boost's own placeholder made Boost 1.74's error
// message loop forever (it replaces "%invalid_line%" with the line until none is left); it is a
// ConfigError naming the file and the line.
TEST(Config, InvalidLineWithBoostPlaceholderIsAnError) {
  for (const std::string line : {"%invalid_line%", "x%invalid_line%y", "[train]\n%canonical_option% %invalid_line%"}) {
    const std::string e = errorOf([&] { parseConfigText(line + "\n", "fuzz.ini", {}); });
    EXPECT_NE(e.find("fuzz.ini: invalid line"), std::string::npos) << e;
    EXPECT_NE(e.find("%invalid_line%"), std::string::npos) << e;
  }
}

// Fuzzing: an override value with '#' (or a line break) was accepted, but the resolved config.ini
// the other ranks and --resume read cut it at the '#' (or split it into other keys). Refused, named.
TEST(Config, OverrideValuesConfigIniCannotHoldAreRefused) {
  const std::vector<std::string> overrides = {"train.algo=bp#x", "data.dir=/data/run#1", "data.dir=a\nmodel.name = mlp",
                                              "data.dir=a\rb", std::string("data.dir=a\0b", 12)};
  for (const std::string& o : overrides) {
    const std::string e = errorOf([&] { parseConfig("", {o}); });
    EXPECT_NE(e.find("override '" + o.substr(0, o.find('=')) + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("may not contain '#'"), std::string::npos) << e;
  }
  // Everything accepted survives the round trip through the resolved text.
  TrainConfig c = parseConfig("", {"data.dir=/data/a b=c;d", "train.algo=bp"});
  EXPECT_EQ(c.data.dir, "/data/a b=c;d");
  EXPECT_EQ(iniText(parseConfigText(iniText(c), "config.ini", {})), iniText(c));
}

TEST(Config, HelpListsEveryKey) {
  std::string h = configHelp();
  for (const char* k : {"train.algo", "optim.lr", "data.name", "checkpoint.every_steps", "runtime.threads"})
    EXPECT_NE(h.find(k), std::string::npos) << k;
}

}  // namespace sw
