// stagewise: command-line entry. Assembles config -> MPI runtime -> trainer and maps errors to
// exit codes (0 done, 2 bad input, 3 failure during the run). A failure on one rank prints one
// line `[rank r/N host] cause` and brings the whole job down (MPI_Abort), so no rank hangs.
// Holds no training logic.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "comm/Mpi.h"
#include "config/TrainConfig.h"
#include "coord/Coordinator.h"
#include "core/Error.h"
#include "core/Log.h"
#include "io/H5.h"
#include "algo/Registry.h"
#include "app/CheckpointCommand.h"
#include "app/ModelCommands.h"
#include "app/PlanCommands.h"
#include "app/ScheduleCommand.h"
#include "train/Trainer.h"

namespace {

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop.store(true); }

const char* kUsage =
    "usage: stagewise train --config FILE [section.key=value ...] [--out DIR] [--resume DIR]\n"
    "       stagewise train --help      (lists every config key with its default)\n"
    "       stagewise schedule --algo A --stages S --microbatches M [--replicas R] [--vertical-sync]\n"
    "                                   (per-rank timeline, idle fraction, validation)\n"
    "       stagewise profile --config FILE --out profile.json   (under mpirun: also the links)\n"
    "                                   (measured per-block costs for the planner)\n"
    "       stagewise plan --profile profile.json --cluster cluster.ini [--algos ...] [--memory GB]\n"
    "                                   (predicted step time, idle, memory per algorithm; overrides)\n"
    "       stagewise checkpoint verify|inspect DIR\n"
    "                                   (check checkpoints against their manifests; what one holds)\n"
    "       stagewise eval --run DIR [--checkpoint STEP] [--split test|train]   (under mpirun: any rank count)\n"
    "                                   (loss, top-1, top-5 of a run's checkpoint)\n"
    "       stagewise export --run DIR --format safetensors|h5 --out FILE [--probe FILE.h5]\n"
    "                                   (the whole model in one file; tools/load_in_torch.py loads it)\n"
    "Run on N ranks with mpirun -n N, srun, or launch/local.sh N CONFIG.\n";

struct TrainArgs {
  std::string config, out, resume;
  std::vector<std::string> overrides;
  bool help = false;
};

TrainArgs parseArgs(const std::vector<std::string>& args) {
  TrainArgs t;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (a.size() > flag.size() && a[flag.size()] == '=') return a.substr(flag.size() + 1);
      if (i + 1 >= args.size()) throw sw::ConfigError(flag + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") t.help = true;
    else if (a.rfind("--config", 0) == 0 || a == "-c") t.config = value(a == "-c" ? "-c" : "--config");
    else if (a.rfind("--out", 0) == 0) t.out = value("--out");
    else if (a.rfind("--resume", 0) == 0) t.resume = value("--resume");
    else if (a.find('=') != std::string::npos) t.overrides.push_back(a);
    else if (a.rfind("--", 0) == 0 && i + 1 < args.size()) t.overrides.push_back(a + "=" + args[++i]);
    else throw sw::ConfigError("unexpected argument '" + a + "'\n" + kUsage);
  }
  return t;
}

// Rank 0 reads and validates the config; every rank gets the resolved text.
sw::TrainConfig loadConfig(TrainArgs& t) {
  sw::TrainConfig cfg;
  if (!t.resume.empty() && t.config.empty()) {
    const std::string path = t.resume + "/config.ini";
    std::ifstream f(path);
    if (!f) throw sw::InputError(t.resume + ": not a stagewise run directory (no config.ini)");
    std::stringstream ss;
    ss << f.rdbuf();
    cfg = sw::parseConfigText(ss.str(), path, t.overrides);
  } else {
    if (t.config.empty()) throw sw::ConfigError(std::string("--config FILE is required\n") + kUsage);
    cfg = sw::parseConfig(t.config, t.overrides);
  }
  (void)sw::findAlgorithm(cfg.train.algo);  // an unknown train.algo is bad input, named here
  if (t.out.empty()) t.out = !t.resume.empty() ? t.resume : "runs/" + std::filesystem::path(t.config).stem().string();
  return cfg;
}

// Runs the trainer to the end with the signal handlers installed.
int trainWith(sw::Trainer& trainer, sw::Communicator& world, const std::string& out) {
  trainer.prepare();  // all input validated here, on every rank, before anything is written
  std::signal(SIGINT, onSignal);
  std::signal(SIGTERM, onSignal);
  sw::EvalResult r = trainer.run(&g_stop);
  if (world.rank() == 0) {
    if (trainer.stoppedBySignal())
      std::cerr << "stopped by signal; resume with: stagewise train --resume " << out << "\n";
    else
      std::cerr << "done: test accuracy " << 100.0 * r.acc << "%, run directory " << out << "\n";
  }
  return 0;
}

int train(const std::vector<std::string>& args, sw::MpiRuntime& mpi) {
  sw::Communicator& world = mpi.world();
  TrainArgs t;
  sw::TrainConfig cfg;
  std::string text;
  sw::agree(world, [&] {
    if (world.rank() != 0) return;
    t = parseArgs(args);
    if (t.help) return;
    cfg = loadConfig(t);
    text = iniText(cfg);
  });
  if (world.rank() == 0 && t.help) {
    std::cout << kUsage << "\nconfig keys (INI [section] key = value, or section.key=value):\n" << sw::configHelp()
              << "\nalgorithms (train.algo) and the config sections they read:\n" << sw::algorithmHelp();
  }
  std::string help = t.help ? "1" : "";
  world.broadcastString(help, 0);
  if (!help.empty()) return 0;
  world.broadcastString(text, 0);
  world.broadcastString(t.out, 0);
  world.broadcastString(t.resume, 0);
  if (world.rank() != 0) cfg = sw::parseConfigText(text, "config from rank 0", {});
  cfg.runtime.localRanks = mpi.localSize();
  cfg.runtime.localRank = mpi.localRank();
  world.setOptions({.timeoutSeconds = cfg.runtime.commTimeout});
  sw::Trainer trainer(cfg, t.out, t.resume, &world);
  return trainWith(trainer, world, t.out);
}

// Runs `body` on every rank of an MPI job with the exit-status conventions of train.
int runUnderMpi(int argc, char** argv, const std::function<int(sw::MpiRuntime&)>& body) {
  std::unique_ptr<sw::MpiRuntime> mpi;
  try {
    mpi = std::make_unique<sw::MpiRuntime>(&argc, &argv);
  } catch (const std::exception& e) {
    std::cerr << "[rank ?/? " << sw::MpiRuntime::hostName() << "] failure: " << e.what() << "\n";
    return 3;
  }
  const int rank = mpi->rank(), size = mpi->size();
  sw::LogContext::get().rank = rank;
  sw::LogContext::get().size = size;
  const std::string who = "[rank " + std::to_string(rank) + "/" + std::to_string(size) + " " + sw::MpiRuntime::hostName() + "] ";
  int code = 0;
  try {
    code = body(*mpi);
  } catch (const sw::PeerFailure& e) {
    code = e.code();  // the failing rank printed the cause; everybody agreed to stop
  } catch (const sw::InputError& e) {
    const sw::ErrorReport& rep = sw::agreedErrorReport();
    if (!rep.silent) std::cerr << (rep.who.empty() ? who : rep.who) << "error: " << e.what() << "\n";
    code = 2;
  } catch (const std::exception& e) {
    const sw::ErrorReport& rep = sw::agreedErrorReport();
    if (!rep.silent) std::cerr << (rep.who.empty() ? who : rep.who) << "failure: " << e.what() << "\n";
    code = 3;
  }
  // A failure the other ranks did not agree on leaves them inside a collective or a receive:
  // take the whole job down rather than let them wait for the watchdog.
  if (code != 0 && size > 1 && !sw::failureWasAgreed()) {
    std::cerr << std::flush;
    mpi->world().abort(code);
  }
  return code;
}

// A single-process command: bad input is one line and status 2, any other failure status 3.
int runLocal(const std::string& name, const std::function<int()>& body) {
  try {
    return body();
  } catch (const sw::InputError& e) {
    std::cerr << "stagewise " << name << ": error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "stagewise " << name << ": failure: " << e.what() << "\n";
    return 3;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f, some batch systems) makes a write fail with EFBIG, reported
  // naming the file, instead of killing the process.
  std::signal(SIGXFSZ, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  if (cmd == "profile")
    return runUnderMpi(argc, argv, [&](sw::MpiRuntime& mpi) {
      return sw::profileCommand(args, mpi.world(), mpi.localSize(), std::cout);
    });
  if (cmd == "plan") return runLocal("plan", [&] { return sw::planCommand(args, std::cout); });
  if (cmd == "train") {
    const int code = runUnderMpi(argc, argv, [&](sw::MpiRuntime& mpi) { return train(args, mpi); });
    if (sw::h5::closeFailed()) {  // HDF5 1.10 would crash in its exit handler (io/H5.h)
      std::cout.flush();
      std::cerr.flush();
      std::fflush(nullptr);
      std::_Exit(code);
    }
    return code;
  }
  if (cmd == "schedule") return runLocal("schedule", [&] { return sw::scheduleCommand(args, std::cout); });
  if (cmd == "checkpoint") return runLocal("checkpoint", [&] { return sw::checkpointCommand(args, std::cout); });
  if (cmd == "export") return runLocal("export", [&] { return sw::exportCommand(args, std::cout); });
  if (cmd == "eval")
    return runUnderMpi(argc, argv, [&](sw::MpiRuntime& mpi) {
      return sw::evalCommand(args, mpi.world(), mpi.localSize(), mpi.localRank(), std::cout);
    });
  std::cerr << "stagewise: unknown command '" << cmd << "'\n" << kUsage;
  return 2;
}
