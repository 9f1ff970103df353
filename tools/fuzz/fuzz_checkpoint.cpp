// Fuzzes the checkpoint reader. Input: the COMMITTED manifest, kSplit, the bytes of rank 0's shard.
// Both are written into a step directory (RUN/checkpoints/step_000000004/{COMMITTED,rank_00000.h5}),
// then every reader a resume runs is called on it, each on its own: readManifest, verify(dir, -1),
// readShardHeader, resumeSource, and readShard / readResharded into a small MLP (the model of the
// seed shard: hidden 8, input 1x4x4, 10 classes) on the CPU backend. Bad input must be an
// InputError (DamagedError for a damaged file) or IoError naming the step directory or its files.
#include "FuzzUtil.h"
#include "backend/BackendFactory.h"
#include "io/Checkpoint.h"
#include "io/H5.h"
#include "nn/Zoo.h"
#include "optim/Optimizer.h"

namespace {

struct Fixture {
  std::unique_ptr<sw::Backend> be = sw::makeBackend(sw::BackendOptions{.device = "cpu", .threads = 1});
  std::unique_ptr<sw::Model> model;
  std::unique_ptr<sw::Optimizer> opt;
  Fixture() {
    sw::ModelSpec spec;
    spec.name = "mlp";
    spec.hidden = {8};
    model = sw::buildModel(*be, spec, sw::Shape{1, 4, 4}, 10, 0);
    opt = std::make_unique<sw::Optimizer>(*be, model->params(), sw::OptimConfig{});
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fx;
  const std::vector<std::string> parts = swfuzz::split(data, size, 2);
  const std::string run = swfuzz::scratch() + "/run";
  const sw::CheckpointStore store(run);
  const std::string dir = store.stepDir(4);
  std::filesystem::create_directories(dir);
  const std::string manifest = dir + "/COMMITTED", shard = sw::rankFilePath(dir, "", 0);
  swfuzz::writeFile(manifest, parts[0]);
  swfuzz::writeFile(shard, parts[1]);

  swfuzz::expect([&] { (void)sw::readManifest(dir); }, {manifest});
  swfuzz::expect([&] { sw::CheckpointStore::verify(dir, -1); }, {dir});
  swfuzz::expect([&] {
    sw::h5::File f(shard, sw::h5::Access::kRead);
    sw::TrainProgress p;
    (void)sw::readShardHeader(f, p);
  }, {shard});
  sw::Model& m = *fx.model;
  const std::vector<sw::BlockRange> parts1{{0, m.numBlocks()}};
  swfuzz::expect([&] {
    sw::TrainProgress p;
    sw::Rng::State rs;
    sw::ShardMeta meta;
    store.readShard(dir, 0, m, {}, *fx.opt, p, rs, &meta);
  }, {dir});
  // A resume on this job's shape (1 rank) and on another (2 stages): the manifest's topology is checked
  // and the resharded read picks each tensor from the shard holding its block.
  for (const int stages : {1, 2}) {
    swfuzz::expect([&] {
      const std::vector<sw::BlockRange> parts2{{0, 1}, {1, m.numBlocks()}};
      const sw::ResumeSource src =
          sw::resumeSource(dir, 0, stages, stages, 1, 0, stages == 1 ? parts1 : parts2, m.numBlocks());
      sw::TrainProgress p;
      sw::Rng::State rs;
      sw::ShardMeta meta;
      std::vector<std::string> fresh;
      const sw::BlockRange range = stages == 1 ? sw::BlockRange{} : parts2[0];
      if (!src.sameShape) store.readResharded(src, m, range, *fx.opt, p, rs, &meta, &fresh);
    }, {dir});
  }
  return 0;
}
