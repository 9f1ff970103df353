// Any rank count: a batch that does not divide by the replicas, or a mini-batch that does not
// divide by the micro-batches, is split as evenly as possible and the gradients are averaged by
// sample count, so training still equals single-process backprop on the full batch. Run on 3, 5
// and 7 ranks (with a batch of 50: 17/17/16, 10 x 5, 8/7/7/7/7/7/7) and on 4 (2 stages x 2
// replicas with 25 samples in 2 micro-batches of 12 and 13).
#include <gtest/gtest.h>

#include "train/TrainMatch.h"

namespace sw {
namespace {

TEST(Uneven, DataParallelEqualsFullBatchBackprop) {
  expectMatches({"train.algo=dp", "train.batch_size=50"}, {"train.algo=bp", "train.batch_size=50"}, 1e-5,
                "uneven_dp");
}

TEST(Uneven, DataParallelWithMicroBatchesEqualsFullBatchBackprop) {
  // 400 samples: 8 whole batches (micro-batches drop a last partial batch, bp would not).
  expectMatches({"train.algo=dp", "train.batch_size=50", "pipe.microbatches=3", "data.synthetic_train=400"},
                {"train.algo=bp", "train.batch_size=50", "data.synthetic_train=400"}, 1e-5, "uneven_dp_mb");
}

TEST(Uneven, ModelParallelMicroBatchesEqualBackprop) {
  if (runtime().world().size() > 4) GTEST_SKIP() << "the test's mlp has 4 blocks";
  expectMatches({"train.algo=mp", "train.batch_size=16", "pipe.microbatches=3", "pipe.balance=macs"},
                {"train.algo=bp", "train.batch_size=16"}, 1e-5, "uneven_mp");
}

TEST(Uneven, StagesTimesReplicasEqualsFullBatch) {
  if (runtime().world().size() % 2 != 0) GTEST_SKIP() << "needs an even rank count";
  const std::string s = std::to_string(runtime().world().size() / 2);
  expectMatches({"train.algo=1f1b", "pipe.stages=" + s, "train.batch_size=50", "pipe.microbatches=2",
                 "pipe.balance=macs", "data.synthetic_train=400"},
                {"train.algo=bp", "train.batch_size=50", "data.synthetic_train=400"}, 1e-5, "uneven_stages_x_replicas");
}

// Parle's shards of an uneven batch: every replica steps on its share (8 batches per epoch, 17, 17
// and 16 samples on 3 ranks), to the end of the run.
TEST(Uneven, ParleShardsTrain) {
  Communicator& w = runtime().world();
  Trainer t(cfgWith({"train.algo=parle", "parle.data=shard", "train.batch_size=50"}), sharedDir("uneven_parle"), "",
            &w);
  t.prepare();
  const EvalResult r = t.run();
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_EQ(r.samples, 128);
  EXPECT_EQ(t.rankStats().updates, 16);  // 2 epochs of 8 (384 samples: 7 of 50 and one of 34)
  w.barrier();
}

}  // namespace
}  // namespace sw
