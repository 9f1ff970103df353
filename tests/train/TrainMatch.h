// Distributed training against single-process truth (shared by the MPI train tests): every rank
// trains the distributed config on the world and the reference alone, then compares the
// parameters of the blocks it owns.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "config/TrainConfig.h"
#include "mpi/MpiTestUtil.h"
#include "train/Trainer.h"

namespace sw {

using mpitest::runtime;
using mpitest::sharedDir;

inline TrainConfig cfgWith(std::vector<std::string> extra) {
  std::vector<std::string> o = {"data.name=synthetic", "data.synthetic_train=384", "data.synthetic_test=128",
                                "data.synthetic_shape=1,8,8", "model.name=mlp", "model.hidden=48,40,32",
                                "train.batch_size=48", "train.epochs=2", "optim.lr=0.05", "runtime.threads=1",
                                "train.seed=11", "checkpoint.every_epochs=0"};
  o.insert(o.end(), extra.begin(), extra.end());
  return parseConfig("", o);
}

inline std::vector<float> stageParams(Trainer& t, BlockRange r) {
  std::vector<float> v;
  for (Param* p : t.model().params(r)) v.insert(v.end(), p->value.data(), p->value.data() + p->value.numel());
  return v;
}

// Trains `dist` on the world and `ref` alone on this rank; compares this rank's blocks.
inline void expectMatches(const std::vector<std::string>& dist, const std::vector<std::string>& ref, double relTol,
                   const std::string& name) {
  Communicator& w = runtime().world();
  const std::string dir = sharedDir(name);
  Trainer d(cfgWith(dist), dir + "/dist", "", &w);
  d.prepare();
  EvalResult ed = d.run();
  Trainer s(cfgWith(ref), dir + "/ref_" + std::to_string(w.rank()));
  s.prepare();
  EvalResult es = s.run();
  const auto a = stageParams(d, d.stageRange()), b = stageParams(s, d.stageRange());
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  double maxRel = 0;
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) ++differ;
    maxRel = std::max(maxRel, std::abs(double(a[i]) - b[i]) / std::max(1e-3, std::abs(double(b[i]))));
  }
  if (relTol == 0) EXPECT_EQ(differ, 0u) << name << ": " << differ << " of " << a.size() << " parameters differ";
  else EXPECT_LE(maxRel, relTol) << name;
  EXPECT_NEAR(ed.acc, es.acc, relTol == 0 ? 0 : 0.02) << name;
  w.barrier();
}


}  // namespace sw
