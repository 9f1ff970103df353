// Checkpoints that can't silently lie: every damage to a committed checkpoint - a flipped byte in
// any dataset of a shard, a truncated or missing shard, a shard from another run, a manifest that
// names another size - is found before anything is used, named (file and dataset), and resume
// falls back to the newest checkpoint that verifies (keeping the damaged one) unless told not to.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>

#include "config/TrainConfig.h"
#include "core/Error.h"
#include "io/Checkpoint.h"
#include "io/H5.h"
#include "train/Trainer.h"

namespace fs = std::filesystem;

namespace sw {
namespace {

std::string freshDir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/sw_ckpt_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(d);
  return d;
}

TrainConfig cfgWith(std::vector<std::string> extra) {
  std::vector<std::string> o = {"model.name=mlp", "model.hidden=16", "data.name=synthetic", "data.synthetic_train=256",
                                "data.synthetic_test=64", "data.synthetic_shape=1,4,4", "train.batch_size=32",
                                "train.epochs=2", "checkpoint.every_steps=4", "checkpoint.keep=3",
                                "train.log_every_seconds=1000"};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

// A finished run with committed checkpoints at steps 8, 12 and 16 (the newest three).
std::string trainedRun(const std::string& name, std::vector<std::string> extra = {}) {
  const std::string dir = freshDir(name);
  Trainer t(cfgWith(extra), dir);
  t.run();
  return dir;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const DamagedError& e) {
    return e.what();
  }
  return "";
}

// Every dataset of a file, with its byte offset in the file (contiguous storage).
std::vector<std::pair<std::string, haddr_t>> datasets(const std::string& path) {
  std::vector<std::pair<std::string, haddr_t>> out;
  h5::File f(path, h5::Access::kRead);
  std::function<void(const std::string&)> walk = [&](const std::string& g) {
    for (const std::string& n : f.list(g)) {
      const std::string obj = (g == "/" ? "" : g) + "/" + n;
      if (f.isGroup(obj)) {
        walk(obj);
        continue;
      }
      const hid_t d = H5Dopen2(f.id(), obj.c_str(), H5P_DEFAULT);
      const haddr_t off = H5Dget_offset(d);
      H5Dclose(d);
      if (off != HADDR_UNDEF) out.push_back({obj, off});
    }
  };
  walk("/");
  return out;
}

void flipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c;
  f.read(&c, 1);
  c = char(c ^ 0x40);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

TEST(Checkpoint, AFlippedByteInAnyDatasetIsNamed) {
  const std::string run = trainedRun("flip");
  CheckpointStore store(run);
  const std::string step = *store.latest(), shard = step + "/rank_00000.h5";
  CheckpointStore::verify(step, -1);  // intact
  const auto ds = datasets(shard);
  ASSERT_GE(ds.size(), 10u);
  for (const auto& [obj, off] : ds) {
    flipByte(shard, off);
    const std::string e = errorOf([&] { CheckpointStore::verify(step, 0); });
    EXPECT_NE(e.find(shard), std::string::npos) << obj << ": " << e;
    EXPECT_NE(e.find("'" + obj + "'"), std::string::npos) << obj << ": " << e;
    flipByte(shard, off);  // restore
  }
  CheckpointStore::verify(step, -1);
  fs::remove_all(run);
}

TEST(Checkpoint, TruncatedMissingForeignAndMisdescribedShardsAreNamed) {
  const std::string run = trainedRun("kinds"), other = trainedRun("other", {"train.seed=9"});
  CheckpointStore store(run);
  const std::vector<std::string> steps = store.committed();
  ASSERT_EQ(steps.size(), 3u);
  const std::string shard = steps[0] + "/rank_00000.h5";
  // Truncated.
  fs::copy_file(shard, shard + ".keep");
  fs::resize_file(shard, 2000);
  EXPECT_NE(errorOf([&] { CheckpointStore::verify(steps[0], 0); }).find("truncated"), std::string::npos);
  // Missing.
  fs::remove(shard);
  EXPECT_NE(errorOf([&] { CheckpointStore::verify(steps[0], 0); }).find("missing"), std::string::npos);
  // From another run (same name and size, other content).
  fs::copy_file(CheckpointStore(other).stepDir(16) + "/rank_00000.h5", shard);
  const std::string foreign = errorOf([&] { CheckpointStore::verify(steps[0], 0); });
  EXPECT_NE(foreign.find(shard), std::string::npos) << foreign;
  EXPECT_NE(foreign.find("the manifest says"), std::string::npos) << foreign;
  fs::remove(shard);
  fs::rename(shard + ".keep", shard);
  CheckpointStore::verify(steps[0], -1);
  // A manifest naming another size.
  const std::string marker = steps[1] + "/COMMITTED";
  std::ifstream in(marker);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  const Manifest m = readManifest(steps[1]);
  const std::string size = std::to_string(m.files.at(0).bytes);
  text.replace(text.find(size), size.size(), std::to_string(m.files.at(0).bytes + 8));
  std::ofstream(marker) << text;
  EXPECT_NE(errorOf([&] { CheckpointStore::verify(steps[1], 0); }).find("the manifest says"), std::string::npos);
  // Not a manifest at all.
  std::ofstream(steps[2] + "/COMMITTED") << "{ not json";
  EXPECT_NE(errorOf([&] { CheckpointStore::verify(steps[2], 0); }).find("not a stagewise checkpoint manifest"),
            std::string::npos);
  fs::remove_all(run);
  fs::remove_all(other);
}

// Fuzzing (tools/fuzz/fuzz_checkpoint): manifests that made readManifest throw std:: exceptions
// (a digest std::stoull rejects), convert a float to int with undefined behaviour, or divide by zero
// in resumeSource (replicas = 0). Each is now a DamagedError naming the manifest.
TEST(Checkpoint, FuzzedManifestsAreDamagedErrors) {
  const std::string dir = freshDir("fuzz_manifest") + "/checkpoints/step_000000004";
  fs::create_directories(dir);
  const std::string marker = dir + "/COMMITTED";
  auto manifest = [](const std::string& world, const std::string& replicas, const std::string& files,
                     const std::string& partition = "[[0,2]]") {
    return R"({"files":)" + files + R"(,"format":2,"partition":)" + partition + R"(,"replicas":)" + replicas +
           R"(,"stages":1,"step":4,"world":)" + world + "}";
  };
  auto file = [](const std::string& name, const std::string& digest) {
    return R"([{"bytes":17272,"digest":")" + digest + R"(","name":")" + name + R"(","rank":0}])";
  };
  const std::string good = file("rank_00000.h5", "959914521fd14488");
  std::ofstream(marker) << manifest("1", "1", good);
  EXPECT_EQ(readManifest(dir).files.at(0).digest, 0x959914521fd14488u);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {manifest("1", "1", file("rank_00000.h5", "959914521fd14488959")), "digest"},  // std::out_of_range
      {manifest("1", "1", file("rank_00000.h5", "zz")), "digest"},                   // std::invalid_argument
      {manifest("1", "1", file("rank_00000.h5", "-1")), "digest"},                   // was read as 2^64 - 1
      {manifest("1e300", "1", good), "world = 1e+300"},                              // float -> int
      {manifest("1", "0", good), "replicas = 0"},                                    // replica % 0
      {manifest("2147483648", "1", good), "world = 2147483648"},
      {manifest("1", "1", file("../../rank_00000.h5", "1")), "not a file name in the step directory"},
      {manifest("1", "1", good, "[[0]]"), "partition range"},
      {manifest("1", "1", good, "[[0,-2]]"), "partition block"},
      {"step 4\nworld 0\n", "format-1"},
      {"[1,2]", "not a JSON object"},
  };
  for (const auto& [text, what] : cases) {
    std::ofstream(marker) << text;
    const std::string e = errorOf([&] { readManifest(dir); });
    EXPECT_NE(e.find(marker), std::string::npos) << text << ": " << e;
    EXPECT_NE(e.find(what), std::string::npos) << text << ": " << e;
  }
  // resumeSource on another shape read replicas = 0 and divided by it.
  std::ofstream(marker) << manifest("1", "0", good);
  EXPECT_NE(errorOf([&] { resumeSource(dir, 0, 2, 2, 1, 0, {{0, 1}, {1, 2}}, 2); }).find("replicas = 0"),
            std::string::npos);
  fs::remove_all(fs::path(dir).parent_path().parent_path());
}

// Fuzzing: shards that made the reader throw std::invalid_argument (sample_shape not numbers),
// std::bad_alloc (a parameter whose header claims 2^40 x 8 floats the file does not hold) or
// std::out_of_range (an empty optimizer step count). Each is a DamagedError naming the shard.
TEST(Checkpoint, FuzzedShardsAreDamagedErrors) {
  const std::string run = trainedRun("fuzz_shard");
  CheckpointStore store(run);
  const std::string step = *store.latest(), shard = step + "/rank_00000.h5";
  const TrainConfig cfg = cfgWith({});
  auto be = makeBackend(cfg.runtime);
  auto model = buildModel(*be, cfg.model, Shape{1, 4, 4}, 10, 0);
  Optimizer opt(*be, model->params(), cfg.optim);
  auto read = [&] {
    TrainProgress p;
    Rng::State rs;
    store.readShard(step, 0, *model, {}, opt, p, rs);
  };
  read();  // intact
  fs::copy_file(shard, shard + ".keep");
  auto restore = [&] { fs::copy_file(shard + ".keep", shard, fs::copy_options::overwrite_existing); };
  const std::string param = "/params/" + model->params().at(0)->name;
  const std::vector<std::pair<std::function<void(h5::File&)>, std::string>> cases = {
      {[](h5::File& f) { f.setAttr("/", "sample_shape", std::string("1,x,4")); }, "sample_shape = '1,x,4'"},
      {[&](h5::File& f) {
         ASSERT_GE(H5Ldelete(f.id(), param.c_str(), H5P_DEFAULT), 0);
         const hsize_t dims[2] = {hsize_t(1) << 40, 8}, chunk[2] = {1, 8};
         h5::Handle sp(H5Screate_simple(2, dims, nullptr), H5Sclose);
         h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
         H5Pset_chunk(dcpl.get(), 2, chunk);
         h5::Handle d(H5Dcreate2(f.id(), param.c_str(), H5T_IEEE_F32LE, sp.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                      H5Dclose);
         ASSERT_TRUE(d.valid());
       },
       "the file stores 0"},
      {[&](h5::File& f) { f.writeInt64("/optim/" + model->params().at(0)->name + "/steps", {}); }, "/steps' should hold"},
  };
  for (const auto& [damage, what] : cases) {
    {
      h5::File f(shard, h5::Access::kReadWrite);
      damage(f);
    }
    const std::string e = errorOf(read);
    EXPECT_NE(e.find(shard), std::string::npos) << what << ": " << e;
    EXPECT_NE(e.find(what), std::string::npos) << what << ": " << e;
    restore();
  }
  read();
  fs::remove_all(run);
}

TEST(Checkpoint, ResumeFallsBackToTheNewestThatVerifies) {
  const std::string run = trainedRun("fallback");
  CheckpointStore store(run);
  const std::string latest = *store.latest();  // step 16
  fs::resize_file(latest + "/rank_00000.h5", 3000);
  {
    Trainer t(cfgWith({"train.epochs=3", "checkpoint.fallback=false"}), run, run);
    const std::string e = errorOf([&] { t.prepare(); });
    EXPECT_NE(e.find("rank_00000.h5"), std::string::npos) << e;
    EXPECT_TRUE(fs::exists(latest)) << "without fallback nothing is renamed";
  }
  Trainer t(cfgWith({"train.epochs=3"}), run, run);
  t.prepare();
  EXPECT_EQ(t.progress().step, 12) << "resumed from the previous committed checkpoint";
  EXPECT_FALSE(fs::exists(latest));
  EXPECT_TRUE(fs::exists(fs::path(latest).parent_path() / "damaged_step_000000016")) << "kept, renamed";
  t.run();
  EXPECT_EQ(t.progress().epoch, 3);
  // Every checkpoint damaged: bad input naming the run.
  for (const std::string& s : store.committed()) fs::resize_file(s + "/rank_00000.h5", 100);
  Trainer none(cfgWith({"train.epochs=4"}), run, run);
  EXPECT_NE(errorOf([&] { none.prepare(); }).find("no committed checkpoint verifies"), std::string::npos);
  fs::remove_all(run);
}

}  // namespace
}  // namespace sw

namespace sw {
namespace {

// The digest a file's writer records (no HDF5 call) is the one a reader computes by walking it.
TEST(Checkpoint, DigestWhileWritingEqualsDigestOfTheFile) {
  const std::string path = freshDir("digest") + ".h5";
  uint64_t written = 0;
  {
    h5::File f(path, h5::Access::kCreate);
    f.setAttr("/", "step", int64_t(7));
    f.setAttr("/", "loss", 0.25);
    f.setAttr("/", "name", std::string("resnet18"));
    f.setAttr("/", "empty", std::string());
    Tensor t = Tensor::empty(Shape{3, 4});
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = float(i);
    f.writeTensor("/params/a.w", t);
    f.writeTensor("/params/a.w", t);  // overwritten: counted once
    f.writeTensor("/params/a.b", Tensor::empty(Shape{0}));
    f.writeInt64("/optim/a.w/steps", {3});
    f.writeUint8("/u8", {1, 2, 3, 4}, {2, 2});
    f.setAttr("/params/a.w", "note", std::string("x"));
    written = f.digest();
    EXPECT_EQ(written, f.digestFromFile());
  }
  h5::File r(path, h5::Access::kRead);
  EXPECT_EQ(r.digest(), written);
  EXPECT_EQ(r.verifyAll(), 4);
  fs::remove(path);
}

// An attribute changed after the commit (the step, the config) is caught by the manifest's digest.
TEST(Checkpoint, AChangedAttributeIsCaught) {
  const std::string run = trainedRun("attr");
  const std::string step = *CheckpointStore(run).latest(), shard = step + "/rank_00000.h5";
  {
    h5::File f(shard, h5::Access::kReadWrite);
    f.setAttr("/", "step", int64_t(3));
  }
  const std::string e = errorOf([&] { CheckpointStore::verify(step, 0); });
  EXPECT_NE(e.find(shard), std::string::npos) << e;
  EXPECT_NE(e.find("content digest"), std::string::npos) << e;
  fs::remove_all(run);
}

// A write that fails (the disk full: here a file-size limit, so write() returns EFBIG) leaves no
// partial file and no step directory; LATEST still names the previous checkpoint, which resumes.
// The failing write runs in a child process: HDF5 1.10 cannot clean up a file whose close failed
// and would crash at exit (the CLI ends such a process with _Exit, io/H5.h closeFailed).
void failingCheckpointWrite(const std::string& run) {
  struct rlimit small;
  getrlimit(RLIMIT_FSIZE, &small);
  signal(SIGXFSZ, SIG_IGN);
  small.rlim_cur = 64 * 1024;  // below one shard (~220 KB), above the metrics file
  setrlimit(RLIMIT_FSIZE, &small);
  std::string why;
  try {
    Trainer t(cfgWith({"model.hidden=256", "train.epochs=3"}), run, run);
    t.run();
  } catch (const IoError& e) {
    why = e.what();
  }
  std::fprintf(stderr, "write failed: %s\n", why.c_str());
  std::fflush(nullptr);
  std::_Exit(why.find("step_") != std::string::npos && h5::closeFailed() ? 0 : 1);
}

TEST(Checkpoint, AFailedWriteLeavesNothing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string run = trainedRun("full", {"model.hidden=256"});
  CheckpointStore store(run);
  const std::string before = *store.latest();
  const size_t committed = store.committed().size();
  EXPECT_EXIT(failingCheckpointWrite(run), ::testing::ExitedWithCode(0), "write failed: .*step_");
  EXPECT_EQ(*store.latest(), before);
  EXPECT_EQ(store.committed().size(), committed);
  for (const auto& e : fs::recursive_directory_iterator(run / fs::path("checkpoints"))) {
    const std::string n = e.path().filename().string();
    EXPECT_EQ(n.find(".tmp"), std::string::npos) << "partial file left: " << e.path();
    if (e.is_directory() && n.rfind("step_", 0) == 0)
      EXPECT_TRUE(fs::exists(e.path() / "COMMITTED")) << "uncommitted step left: " << e.path();
  }
  Trainer again(cfgWith({"model.hidden=256", "train.epochs=3"}), run, run);
  again.run();
  EXPECT_EQ(again.progress().epoch, 3);
  fs::remove_all(run);
}

}  // namespace
}  // namespace sw
