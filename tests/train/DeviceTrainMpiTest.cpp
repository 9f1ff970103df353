// Training on a device backend, under mpirun with 2 ranks.
//  - Staging: every algorithm on runtime.device = cpu-staged (the CPU backend's arithmetic on
//    memory tagged as a device, so MPI, HDF5 and Tensor's host helpers refuse it) equals the same
//    run on the CPU bit for bit. This walks every upload, download and staged message of the
//    trainers without a GPU: a missed staging step throws, a wrong one changes the weights.
//  - GPU (skipped without a usable device): lenet for a few steps on cuda equals the CPU run
//    within 1e-3 relative (fp32, TF32 off; the summation order of cuBLAS/cuDNN/NCCL differs),
//    for bp, dp on the world and pipedream on the world; bp with LARS, SpecTrain, PETRA (revnet)
//    and DTP likewise (the fused optimizer, coupling and DTP kernels inside whole runs).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "mpi/MpiTestUtil.h"
#include "config/TrainConfig.h"
#include "algo/dtp/DtpAlgorithm.h"
#include "train/Trainer.h"

namespace sw {
namespace {

using mpitest::runtime;
using mpitest::sharedDir;

TrainConfig mlpCfg(const std::vector<std::string>& extra) {
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=192", "data.synthetic_test=64",
                                "data.synthetic_shape=1,8,8", "model.name=mlp_bn", "model.hidden=40,32,24",
                                "train.batch_size=16", "train.epochs=2", "optim.lr=0.05", "optim.momentum=0.9",
                                "runtime.threads=1", "train.seed=7", "checkpoint.every_epochs=1",
                                "pipe.balance=macs"};  // a timed partition could differ between the two runs
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

struct Outcome {
  std::vector<float> params;  // this rank's blocks (all blocks for DTP, F and G), read through toHost
  EvalResult eval;
};

void append(std::vector<float>& v, Backend& be, const std::vector<Param*>& ps) {
  for (Param* p : ps) {
    const Tensor h = be.toHost(p->value);
    v.insert(v.end(), h.data(), h.data() + h.numel());
  }
}

// One run of `cfg` on the world (or alone when `alone`), in a fresh shared directory.
Outcome train(const TrainConfig& cfg, const std::string& name, bool alone) {
  Communicator& w = runtime().world();
  const std::string dir = sharedDir(name) + (alone ? "/r" + std::to_string(w.rank()) : "/run");
  Outcome o;
  Trainer t(cfg, dir, "", alone ? nullptr : &w);
  t.prepare();
  o.eval = t.run();
  append(o.params, t.backend(), t.model().params(t.stageRange()));
  if (auto* dtp = dynamic_cast<DtpAlgorithm*>(&t.algorithm())) append(o.params, t.backend(), dtp->feedback().params());
  return o;
}

void expectStagedEqualsCpu(const std::string& name, TrainConfig cfg, bool alone = false) {
  cfg.runtime.device = "cpu";
  const Outcome cpu = train(cfg, name + "_cpu", alone);
  cfg.runtime.device = "cpu-staged";
  const Outcome staged = train(cfg, name + "_staged", alone);
  ASSERT_EQ(cpu.params.size(), staged.params.size()) << name;
  ASSERT_FALSE(cpu.params.empty()) << name;
  size_t differ = 0;
  for (size_t i = 0; i < cpu.params.size(); ++i) differ += cpu.params[i] != staged.params[i];
  EXPECT_EQ(differ, 0u) << name << ": " << differ << " of " << cpu.params.size() << " parameters differ";
  EXPECT_EQ(cpu.eval.loss, staged.eval.loss) << name;
  EXPECT_EQ(cpu.eval.acc, staged.eval.acc) << name;
  runtime().world().barrier();
}

TEST(Staging, BackendTagsItsTensorsAsDevice) {
  RuntimeSection rt;
  rt.threads = 1;
  rt.device = "cpu-staged";
  auto be = makeBackend(rt);
  Tensor t = be->zeros(Shape{3});
  EXPECT_FALSE(t.device().isCpu());
  EXPECT_THROW(t.fill(1.f), Error);  // host helpers refuse it: code must go through the backend
  Tensor h = be->toHost(t);
  EXPECT_TRUE(h.device().isCpu());
  EXPECT_NE(h.data(), t.data());
}

TEST(Staging, BackpropAlone) { expectStagedEqualsCpu("bp", mlpCfg({"train.algo=bp"}), true); }
TEST(Staging, LarsAlone) {
  expectStagedEqualsCpu("lars", mlpCfg({"train.algo=bp", "optim.name=lars", "optim.weight_decay=1e-3"}), true);
}
TEST(Staging, DataParallel) { expectStagedEqualsCpu("dp", mlpCfg({"train.algo=dp", "dp.bucket_mb=0.001"})); }
TEST(Staging, ModelParallel) { expectStagedEqualsCpu("mp", mlpCfg({"train.algo=mp", "pipe.microbatches=2"})); }
TEST(Staging, GPipe) { expectStagedEqualsCpu("gpipe", mlpCfg({"train.algo=gpipe", "pipe.microbatches=4"})); }
TEST(Staging, OneFOneB) { expectStagedEqualsCpu("1f1b", mlpCfg({"train.algo=1f1b", "pipe.microbatches=4"})); }
TEST(Staging, PipeDream) { expectStagedEqualsCpu("pipedream", mlpCfg({"train.algo=pipedream", "pipedream.drain_every=5"})); }
TEST(Staging, SpecTrain) { expectStagedEqualsCpu("spectrain", mlpCfg({"train.algo=spectrain", "pipedream.drain_every=5"})); }
TEST(Staging, Interlocking) { expectStagedEqualsCpu("interlocking", mlpCfg({"train.algo=interlocking", "interlocking.aux=fc"})); }
TEST(Staging, LocalAlone) { expectStagedEqualsCpu("local", mlpCfg({"train.algo=local", "pipe.stages=1", "interlocking.aux=fc"}), true); }
TEST(Staging, ParleReplicas) {
  expectStagedEqualsCpu("parle", mlpCfg({"train.algo=parle", "parle.L=3", "parle.bn_batches=2"}));
}
TEST(Staging, ElasticEveryStep) {
  expectStagedEqualsCpu("elastic", mlpCfg({"train.algo=parle", "parle.mode=elastic", "parle.L=0"}));
}
TEST(Staging, Petra) {
  expectStagedEqualsCpu("petra", mlpCfg({"train.algo=petra", "model.name=revnet18", "model.width=2",
                                         "data.synthetic_shape=3,8,8", "data.synthetic_train=64",
                                         "train.batch_size=8", "train.epochs=1", "optim.lr=0.02", "pipe.partition=2"}));
}

TrainConfig dtpCfg(const std::string& algo) {
  return mlpCfg({"train.algo=" + algo, "model.name=simple_vgg", "model.width=4", "data.synthetic_shape=1,32,32",
                 "data.synthetic_train=48", "train.epochs=1", "optim.weight_decay=1e-4",
                 "dtp.feedback_iterations=2,3,2,4,3", "dtp.feedback_lr=1e-3,1e-3,1e-2,1e-2,0.1",
                 "optim.momentum=0", "train.log_every_seconds=1000"});
}
TEST(Staging, DtpAlone) { expectStagedEqualsCpu("dtp", dtpCfg("dtp"), true); }
TEST(Staging, DtpParallel) { expectStagedEqualsCpu("dtp_parallel", dtpCfg("dtp_parallel")); }

// ---- on a GPU -------------------------------------------------------------------------------

TrainConfig lenetCfg(const std::vector<std::string>& extra) {
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=256", "data.synthetic_test=64",
                                "data.synthetic_shape=1,28,28", "model.name=lenet", "train.batch_size=32",
                                "train.epochs=1", "train.max_steps=6", "optim.lr=0.05", "optim.momentum=0.9",
                                "runtime.threads=1", "train.seed=21", "checkpoint.every_epochs=0",
                                // The same cut on both backends (time balancing measures each).
                                "pipe.balance=macs"};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

void expectCudaNearCpu(const std::string& name, TrainConfig cfg, bool alone = false) {
  if (cudaDeviceCount() == 0) GTEST_SKIP() << "no usable CUDA device";
  cfg.runtime.device = "cpu";
  const Outcome cpu = train(cfg, name + "_cpu", alone);
  cfg.runtime.device = "cuda";
  const Outcome gpu = train(cfg, name + "_cuda", alone);
  ASSERT_EQ(cpu.params.size(), gpu.params.size()) << name;
  double maxRel = 0;
  for (size_t i = 0; i < cpu.params.size(); ++i)
    maxRel = std::max(maxRel, std::abs(double(gpu.params[i]) - cpu.params[i]) /
                                  std::max(1e-2, std::abs(double(cpu.params[i]))));
  EXPECT_LE(maxRel, 1e-3) << name;
  EXPECT_NEAR(gpu.eval.loss, cpu.eval.loss, 1e-3 * std::max(1.0, cpu.eval.loss)) << name;
  runtime().world().barrier();
}

TEST(CudaTrain, BackpropAlone) { expectCudaNearCpu("cuda_bp", lenetCfg({"train.algo=bp"}), true); }
TEST(CudaTrain, DataParallel) { expectCudaNearCpu("cuda_dp", lenetCfg({"train.algo=dp"})); }
TEST(CudaTrain, PipeDream) { expectCudaNearCpu("cuda_pipedream", lenetCfg({"train.algo=pipedream"})); }
// The fused ops of the optimizers, the reversible coupling and DTP inside whole runs.
TEST(CudaTrain, LarsAlone) {
  expectCudaNearCpu("cuda_lars", lenetCfg({"train.algo=bp", "optim.name=lars", "optim.weight_decay=1e-3"}), true);
}
TEST(CudaTrain, SpecTrain) { expectCudaNearCpu("cuda_spectrain", lenetCfg({"train.algo=spectrain"})); }
TEST(CudaTrain, PetraAlone) {
  expectCudaNearCpu("cuda_petra", mlpCfg({"train.algo=petra", "model.name=revnet18", "model.width=2",
                                          "data.synthetic_shape=3,8,8", "data.synthetic_train=64",
                                          "train.batch_size=8", "train.epochs=1", "optim.lr=0.02"}),
                    true);
}
TEST(CudaTrain, DtpAlone) { expectCudaNearCpu("cuda_dtp", dtpCfg("dtp"), true); }

}  // namespace
}  // namespace sw
