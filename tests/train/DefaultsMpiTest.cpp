// Defaults that fit: every registered algorithm with its own defaults (only the data, the batch
// and the model's width made small) trains on lenet, mlp and resnet18 on 1-4 ranks, or refuses
// with a clear configuration error for a reason that lies in the mathematics of the algorithm
// (bp and sequential DTP run on one rank; DTP builds feedback networks only for simple_vgg-like nets: conv -> activation -> maxpool blocks, then linear). Any
// other refusal, or any failure during the run, fails the test, which prints the whole matrix.
#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "algo/Registry.h"
#include "coord/Coordinator.h"
#include "mpi/MpiTestUtil.h"
#include "train/Trainer.h"

namespace sw {
namespace {

using mpitest::runtime;
using mpitest::sharedDir;

std::vector<std::string> modelArgs(const std::string& model) {
  if (model == "mlp") return {"model.name=mlp", "model.hidden=32,32", "data.synthetic_shape=1,12,12"};
  if (model == "lenet") return {"model.name=lenet", "model.width=4", "data.synthetic_shape=1,28,28"};
  return {"model.name=resnet18", "model.width=4", "data.synthetic_shape=3,16,16"};
}

// Why an (algorithm, rank count) may refuse: a substring of the error it must give.
std::string allowedRefusal(const std::string& algo, const std::string& model, int world) {
  if (algo == "bp" && world > 1) return "runs on one rank";
  if (algo == "dtp" && world > 1) return "sequential and runs on one rank";
  if (algo == "dtp" || algo == "dtp_parallel") return "cannot build a feedback network";  // simple_vgg-like nets only
  return "";
}

TEST(Defaults, EveryAlgorithmOnEveryModelAndRankCount) {
  Communicator& w = runtime().world();
  const std::string dir = sharedDir("defaults");
  std::ostringstream table;
  int bad = 0;
  for (const std::string& model : {"mlp", "lenet", "resnet18"}) {
    for (const AlgoInfo& a : algorithms()) {
      std::vector<std::string> o = {"train.algo=" + a.name, "data.name=synthetic", "data.synthetic_train=64",
                                    "data.synthetic_test=32", "train.batch_size=32", "train.eval_batch_size=32",
                                    "train.epochs=1", "runtime.threads=1", "train.log_every_seconds=1000",
                                    "checkpoint.every_epochs=0"};
      for (const std::string& m : modelArgs(model)) o.push_back(m);
      std::string why;
      try {
        Trainer t(parseConfig("", o), dir + "/" + model + "_" + a.name, "", &w);
        const EvalResult r = t.run();
        if (!(r.samples > 0)) why = "3no test samples evaluated";
      } catch (const PeerFailure&) {
        why = "";  // the failing rank says why
      } catch (const InputError& e) {
        why = std::string("2") + e.what();
      } catch (const std::exception& e) {
        why = std::string("3") + e.what();
      }
      std::string first;
      for (const std::string& s : allGatherStrings(w, why))
        if (first.empty()) first = s;
      const std::string allowed = allowedRefusal(a.name, model, w.size());
      std::string verdict = "ok";
      if (!first.empty()) {
        const bool fine = first[0] == '2' && !allowed.empty() && first.find(allowed) != std::string::npos;
        verdict = (fine ? "refused (expected): " : "FAILED: ") + first.substr(1);
        if (!fine) ++bad;
      } else if (!allowed.empty()) {
        verdict = "ok (a refusal was allowed)";
      }
      table << "  " << model << " / " << a.name << " on " << w.size() << " rank(s): " << verdict << "\n";
      w.barrier();
    }
  }
  if (w.rank() == 0) std::cout << table.str();
  EXPECT_EQ(bad, 0) << table.str();
}

}  // namespace
}  // namespace sw
