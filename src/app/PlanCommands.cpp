// `stagewise profile` and `stagewise plan` (plan/Profile.h, plan/Planner.h).
#include "app/PlanCommands.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>

#include "algo/Registry.h"
#include "comm/Mpi.h"
#include "coord/Coordinator.h"
#include "core/Error.h"
#include "core/Strings.h"
#include "plan/Planner.h"

namespace sw {
namespace {

const char* kProfileHelp =
    "usage: stagewise profile --config FILE [section.key=value ...] [--device cpu|cuda] [--rows N,N,...]\n"
    "                         [--repeats K] [--no-comm] --out profile.json\n"
    "  Measures, per model block and micro-batch size (default: the batch halved down to 1/64 of it),\n"
    "  forward, backward, input-only backward, aux head, inverse, optimizer step and DTP feedback\n"
    "  times and the bytes each block holds and sends; with >= 2 ranks (mpirun -n R) also the\n"
    "  point-to-point and allreduce times by size. Every rank measures at once, as in a run with\n"
    "  R ranks on this host; the profile is their average. Feed it to stagewise plan.\n";

const char* kPlanHelp =
    "usage: stagewise plan --profile profile.json --cluster cluster.ini [--algos A,B,...] [--ranks N]\n"
    "                      [--memory GB] [--max-microbatches M] [--out DIR] [section.key=value ...]\n"
    "  Simulates every algorithm's per-rank programs with the profile's measured costs on the\n"
    "  cluster's links, searching shapes (stages x replicas), micro-batch counts and partitions, and\n"
    "  prints per algorithm the predicted step time, samples/s, idle and memory per rank and\n"
    "  staleness, then the fastest plan's config overrides. --out DIR writes plan.txt, plan.json,\n"
    "  overrides.txt and timeline SVGs. Cluster files: configs/cluster/*.ini (docs/planning.md).\n";

struct Args {
  std::map<std::string, std::string> flags;
  std::vector<std::string> overrides;
};

Args parse(const std::vector<std::string>& args, const std::set<std::string>& valued,
           const std::set<std::string>& bare, const std::string& help) {
  Args a;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string k = args[i], v;
    const size_t eq = k.find('=');
    if (k.rfind("--", 0) == 0 && eq != std::string::npos) {
      v = k.substr(eq + 1);
      k = k.substr(0, eq);
    }
    if (valued.count(k)) {
      if (eq == std::string::npos) {
        if (i + 1 >= args.size()) throw ConfigError(k + " needs a value");
        v = args[++i];
      }
      a.flags[k] = v;
    } else if (bare.count(k)) {
      a.flags[k].assign(1, '1');
    } else if (k.rfind("--", 0) != 0 && k.find('=') != std::string::npos) {
      a.overrides.push_back(k);
    } else {
      throw ConfigError("unexpected argument '" + args[i] + "' (" + help.substr(0, help.find('\n')) + ")");
    }
  }
  return a;
}

std::vector<int64_t> intList(const std::string& flag, const std::string& v) {
  std::vector<int64_t> out;
  for (const std::string& s : splitTrimmed(v, ',')) {
    const std::optional<int64_t> x = parseInt(s);
    if (!x || *x < 1) throw ConfigError(flag + ": expected positive integers separated by commas, got '" + v + "'");
    out.push_back(*x);
  }
  return out;
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f.flush()) throw InputError(path + ": cannot write");
}

}  // namespace

int profileCommand(const std::vector<std::string>& args, Communicator& world, int localRanks, std::ostream& out) {
  // Rank 0 reads the arguments and the config (an error is printed once, by rank 0); the
  // others take the resolved config from it.
  std::string text, path, flags;
  agree(world, [&] {
    if (world.rank() != 0) return;
    const Args a = parse(args, {"--config", "--device", "--rows", "--repeats", "--out"},
                         {"--help", "-h", "--no-comm"}, kProfileHelp);
    if (a.flags.count("--help") || a.flags.count("-h")) {
      out << kProfileHelp;
      flags = "help";
      return;
    }
    if (!a.flags.count("--config")) throw ConfigError("--config FILE is required (stagewise profile --help)");
    if (!a.flags.count("--out")) throw ConfigError("--out FILE is required (stagewise profile --help)");
    std::vector<std::string> keys = a.overrides;
    if (a.flags.count("--device")) keys.push_back("runtime.device=" + a.flags.at("--device"));
    text = iniText(parseConfig(a.flags.at("--config"), keys));
    path = a.flags.at("--out");
    const std::string rows = a.flags.count("--rows") ? a.flags.at("--rows") : "";
    if (!rows.empty()) (void)intList("--rows", rows);
    const std::string reps = a.flags.count("--repeats") ? a.flags.at("--repeats") : "5";
    (void)intList("--repeats", reps);
    flags = rows + ";" + reps + ";" + (a.flags.count("--no-comm") ? "0" : "1");
  });
  world.broadcastString(flags, 0);
  if (flags == "help") return 0;
  world.broadcastString(text, 0);
  world.broadcastString(path, 0);
  TrainConfig cfg = parseConfigText(text, "config from rank 0", {});
  cfg.runtime.localRanks = localRanks;
  cfg.runtime.localRank = world.rank() % std::max(1, localRanks);
  const std::vector<std::string> f = splitTrimmed(flags, ';');
  ProfileOptions o;
  if (!f.at(0).empty()) o.rows = intList("--rows", f[0]);
  o.repeats = int(intList("--repeats", f.at(1)).at(0));
  o.comm = f.at(2) == "1";
  Profile p = measureProfile(cfg, world, o);
  p.host = MpiRuntime::hostName();
  if (world.rank() != 0) return 0;
  writeProfile(p, path);
  const double n = double(cfg.train.batchSize / std::max(1, cfg.pipe.microbatches));
  out << "profile of " << p.model << " on " << p.device << " (" << p.threads << " thread(s) per rank, " << p.ranks
      << " rank(s) at once), micro-batch " << n << ":\n";
  out << std::left << std::setw(16) << "block" << std::right << std::setw(11) << "fwd ms" << std::setw(11) << "bwd ms"
      << std::setw(11) << "upd ms" << std::setw(12) << "params MB" << std::setw(12) << "held MB" << "\n";
  for (const BlockProfile& b : p.blocks)
    out << std::left << std::setw(16) << b.name << std::right << std::fixed << std::setprecision(3) << std::setw(11)
        << 1e3 * p.at(b.forward, n) << std::setw(11) << 1e3 * p.at(b.backward, n) << std::setw(11) << 1e3 * b.update
        << std::setw(12) << b.paramBytes / 1e6 << std::setw(12) << p.at(b.heldBytes, n) / 1e6 << "\n";
  if (p.comm.ranks >= 2)
    out << "links (" << p.comm.kind << "): latency " << std::setprecision(2) << 1e6 * p.comm.latency
        << " us, bandwidth " << p.comm.bandwidth / 1e9 << " GB/s\n";
  out << "wrote " << path << "\n";
  return 0;
}

int planCommand(const std::vector<std::string>& args, std::ostream& out) {
  const Args a = parse(args, {"--profile", "--cluster", "--algos", "--ranks", "--memory", "--max-microbatches", "--out"},
                       {"--help", "-h"}, kPlanHelp);
  if (a.flags.count("--help") || a.flags.count("-h")) {
    out << kPlanHelp;
    return 0;
  }
  for (const char* k : {"--profile", "--cluster"})
    if (!a.flags.count(k)) throw ConfigError(std::string(k) + " is required (stagewise plan --help)");
  const Profile p = readProfile(a.flags.at("--profile"));
  const Cluster c = readCluster(a.flags.at("--cluster"), &p);
  PlanOptions o;
  o.overrides = a.overrides;
  if (a.flags.count("--algos")) o.algos = splitTrimmed(a.flags.at("--algos"), ',');
  if (a.flags.count("--ranks")) o.ranks = int(intList("--ranks", a.flags.at("--ranks")).at(0));
  if (a.flags.count("--max-microbatches"))
    o.maxMicrobatches = int(intList("--max-microbatches", a.flags.at("--max-microbatches")).at(0));
  if (a.flags.count("--memory")) {
    const std::optional<double> gb = parseNumber(a.flags.at("--memory"));
    if (!gb || !(*gb > 0)) throw ConfigError("--memory: expected gigabytes > 0, got '" + a.flags.at("--memory") + "'");
    o.memoryBytes = *gb * 1e9;
  }
  const std::vector<AlgoPlan> plans = planAll(p, c, o);
  bool any = false, over = false;
  double smallest = 0;
  for (const AlgoPlan& ap : plans) {
    any |= ap.feasible;
    if (ap.overMemory) smallest = over ? std::min(smallest, ap.smallestMemory) : ap.smallestMemory;
    over |= ap.overMemory;
  }
  if (!any && over) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(3) << "--memory " << o.memoryBytes / 1e9
       << " GB: no plan fits; the smallest needs " << smallest / 1e9 << " GB per rank";
    throw InputError(os.str());
  }
  if (!any) throw InputError("no algorithm can be planned: " + (plans.empty() ? std::string("none given") : plans[0].why));
  const std::string report = planReport(plans, p, c);
  out << report;
  if (a.flags.count("--out")) {
    const std::string dir = a.flags.at("--out");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw InputError(dir + ": cannot create the output directory (" + ec.message() + ")");
    writeFile(dir + "/plan.txt", report);
    writeFile(dir + "/plan.json", planJson(plans, p, c));
    const AlgoPlan* best = nullptr;
    for (const AlgoPlan& ap : plans)
      if (ap.feasible) {
        writeFile(dir + "/timeline_" + ap.algo + ".svg", timelineSvg(ap.best));
        if (!best || ap.best.samplesPerSecond > best->best.samplesPerSecond) best = &ap;
      }
    std::string ov;
    for (const std::string& k : best->best.overrides) ov += (ov.empty() ? "" : " ") + k;
    writeFile(dir + "/overrides.txt", ov + "\n");
    writeFile(dir + "/timeline.svg", timelineSvg(best->best));
    out << "wrote " << dir << "/{plan.txt,plan.json,overrides.txt,timeline.svg}\n";
  }
  return 0;
}

}  // namespace sw
