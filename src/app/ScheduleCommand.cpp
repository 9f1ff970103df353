// `stagewise schedule`: builds every rank's program of an algorithm from the registry (the
// flags become the config keys they stand for, and the algorithm's own plan() resolves them, so
// the command accepts exactly what training accepts), simulates them together, and prints the
// timeline and the validation result.
#include "app/ScheduleCommand.h"

#include <fstream>
#include <iomanip>

#include "algo/Registry.h"
#include "algo/dtp/DtpAlgorithm.h"
#include "algo/petra/PetraAlgorithm.h"
#include "core/Error.h"
#include "core/Strings.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

int toInt(const std::string& flag, const std::string& v, int lo, int hi) {
  const std::optional<int64_t> x = parseInt(v);
  if (!x || *x < lo || *x > hi)
    throw ConfigError(flag + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                      "], got '" + v + "'");
  return int(*x);
}

double toNum(const std::string& flag, const std::string& v) {
  const std::optional<double> x = parseNumber(v);
  if (!x || !(*x >= 0)) throw ConfigError(flag + ": expected a number >= 0, got '" + v + "'");
  return *x;
}

const char* kHelp =
    "usage: stagewise schedule --algo A --stages S --microbatches M [--replicas R] [--steps K]\n"
    "                          [--vertical-sync] [--no-stash] [--accum K] [--stash-params]\n"
    "                          [--reconstruct] [--forward-cost F] [--backward-cost B]\n"
    "                          [--program] [--events FILE] [--n N]\n"
    "                          [--pairwise-mode next_only|sum|mean] [--aux-cost A] [--input-grad-cost I]\n"
    "                          [--blocks L] [--feedback-cost C]\n"
    "  A: any train.algo (stagewise train --help lists them). Prints each rank's\n"
    "  timeline (F3 = forward of micro-batch 3, B3 = its backward, AR = gradient allreduce,\n"
    "  U = optimizer step; interlocking: L3 = aux-head loss, i3 = input-only backward), its idle\n"
    "  fraction and, for flushed pipelines, the bound (S-1)/(M+S-1). --no-stash: pipedream\n"
    "  without weight stashing; petra: --accum K backwards per step, --stash-params,\n"
    "  --reconstruct (every stage inverts its top block). For interlocking, --n is n-wise\n"
    "  (2 = pairwise, the default) and M counts mini-batches (one step each).\n"
    "  parle: K inner steps of M micro-batches each, then one sync (ElasticSync).\n"
    "  dtp_parallel: --replicas ranks share --blocks L feedback blocks round robin (G3 = train\n"
    "  G_3, S3 = its broadcast, T = targets).\n"
    "  --events FILE writes one JSON object per compute span (tools/plot_schedule.py draws it).\n";

}  // namespace

int scheduleCommand(const std::vector<std::string>& args, std::ostream& out) {
  std::string algo = "1f1b";
  int stages = 4, microbatches = 8, replicas = 1, steps = 1, blocks = 5;
  std::vector<std::string> keys;  // the config keys the flags stand for
  SimCosts costs;
  bool showProgram = false, reconstruct = false;
  std::string eventsFile;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], v;
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (eq != std::string::npos) return v;
      if (i + 1 >= args.size()) throw ConfigError(a + " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") {
      out << kHelp;
      return 0;
    } else if (a == "--algo") algo = value();
    else if (a == "--stages") stages = toInt(a, value(), 1, 1024);
    else if (a == "--microbatches" || a == "--mb") microbatches = toInt(a, value(), 1, 1 << 16);
    else if (a == "--replicas") replicas = toInt(a, value(), 1, 1024);
    else if (a == "--steps") steps = toInt(a, value(), 1, 1 << 16);
    else if (a == "--blocks") blocks = toInt(a, value(), 1, 1024);
    else if (a == "--vertical-sync") keys.push_back("pipedream.vertical_sync=true");
    else if (a == "--forward-cost") costs.forward = toNum(a, value());
    else if (a == "--backward-cost") costs.backward = toNum(a, value());
    else if (a == "--program") showProgram = true;
    else if (a == "--no-stash") keys.push_back("pipedream.stash=false");
    else if (a == "--accum") keys.push_back("train.accum_steps=" + std::to_string(toInt(a, value(), 1, 4096)));
    else if (a == "--stash-params") {
      keys.push_back("petra.store_input=true");
      keys.push_back("petra.store_params=true");
    } else if (a == "--reconstruct") reconstruct = true;
    else if (a == "--events") eventsFile = value();
    else if (a == "--n") keys.push_back("interlocking.n=" + std::to_string(toInt(a, value(), 1, 1 << 20)));
    else if (a == "--pairwise-mode") keys.push_back("interlocking.pairwise_mode=" + value());
    else if (a == "--aux-cost") costs.aux = toNum(a, value());
    else if (a == "--input-grad-cost") costs.inputGrad = toNum(a, value());
    else if (a == "--feedback-cost") costs.feedback = toNum(a, value());
    else throw ConfigError("unexpected argument '" + args[i] + "'\n" + kHelp);
  }
  const int world = stages * replicas;
  keys.insert(keys.end(), {"train.algo=" + algo, "pipe.stages=" + std::to_string(stages),
                           "train.batch_size=" + std::to_string(64 * replicas)});
  const TrainConfig cfg = parseConfig("", keys);
  std::unique_ptr<Algorithm> a = makeAlgorithm(cfg);
  ScheduleSpec spec = a->plan(world);
  if (spec.stages != stages || spec.replicas != replicas)
    throw ConfigError("--algo " + algo + " runs " + std::to_string(spec.stages) + " stage(s) x " +
                      std::to_string(spec.replicas) + " replica(s) on " + std::to_string(world) + " ranks");
  if (steps != 1 && algo != "parle") throw ConfigError("--steps applies to --algo parle");
  // One round: M micro-batches (parle: K inner steps of M each).
  spec.microbatches = microbatches * steps;
  a->roundShape(spec, steps);
  if (auto* d = spec.params.find<DelayedParams>(); d && reconstruct) d->reconFrom.assign(size_t(spec.stages), true);
  if (auto* d = spec.params.find<DtpParams>()) {  // round robin, as dtp.assign = round_robin
    d->owner.assign(size_t(blocks) + 1, -1);
    for (int i = 1; i <= blocks; ++i) d->owner[size_t(i)] = i % replicas;
  }
  out << algo << ": " << spec.stages << " stage(s) x " << spec.replicas << " replica(s), " << spec.microbatches
      << " micro-batch(es) per round; forward cost " << costs.forward << ", backward cost " << costs.backward << "\n";
  const std::vector<Program> programs = rankPrograms(*a, spec);
  if (showProgram) {
    for (size_t r = 0; r < programs.size(); ++r) {
      out << "rank " << r << " program:\n";
      for (size_t k = 0; k < programs[r].size(); ++k) {
        out << "  step " << std::setw(3) << k << ":";
        for (const Instr& in : programs[r][k]) out << "  " << str(in);
        out << "\n";
      }
    }
  }
  const SimResult r = simulatePrograms(programs, spec, costs);
  out << renderTimeline(r, spec);
  if (!eventsFile.empty()) {
    std::ofstream f(eventsFile);
    if (!f) throw InputError(eventsFile + ": cannot write the events file");
    f << "{\"algo\": \"" << algo << "\", \"stages\": " << spec.stages << ", \"replicas\": " << spec.replicas
      << ", \"microbatches\": " << spec.microbatches << ", \"makespan\": " << r.makespan << "}\n";
    for (const TimelineEvent& e : r.events)
      f << "{\"rank\": " << e.rank << ", \"op\": \"" << opName(e.in.op) << "\", \"mb\": " << e.in.mb
        << ", \"label\": \"" << shortStr(e.in) << "\", \"start\": " << e.start << ", \"end\": " << e.end << "}\n";
  }
  if (!r.ok) return 1;
  if (spec.boundedSends)
    out << "time per mini-batch " << std::fixed << std::setprecision(2) << r.makespan / spec.microbatches
        << " (global backprop: " << spec.stages * (costs.forward + costs.backward) << ")\n";
  if (a->flushed() && spec.stages > 1)
    out << "bound for a flushed pipeline (S-1)/(M+S-1) = " << std::fixed << std::setprecision(1)
        << 100.0 * (spec.stages - 1) / (spec.microbatches + spec.stages - 1) << "%\n";
  out << "valid: every send matched by one receive, slots written before read, no deadlock\n";
  return 0;
}

}  // namespace sw
