// The schedule inspection command.
#include "schedule/ScheduleCommand.h"

#include <fstream>
#include <iomanip>

#include "core/Error.h"
#include "schedule/Validator.h"

namespace sw {
namespace {

int toInt(const std::string& flag, const std::string& v, int lo, int hi) {
  size_t pos = 0;
  int x = 0;
  try {
    x = std::stoi(v, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos == 0 || pos != v.size() || x < lo || x > hi)
    throw ConfigError(flag + ": expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                      "], got '" + v + "'");
  return x;
}

double toNum(const std::string& flag, const std::string& v) {
  size_t pos = 0;
  double x = -1;
  try {
    x = std::stod(v, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos == 0 || pos != v.size() || !(x >= 0)) throw ConfigError(flag + ": expected a number >= 0, got '" + v + "'");
  return x;
}

const char* kHelp =
    "usage: stagewise schedule --algo A --stages S --microbatches M [--replicas R] [--steps K]\n"
    "                          [--vertical-sync] [--no-stash] [--accum K] [--stash-params]\n"
    "                          [--reconstruct] [--forward-cost F] [--backward-cost B]\n"
    "                          [--program] [--events FILE] [--n N]\n"
    "                          [--pairwise-mode next_only|sum|mean] [--aux-cost A] [--input-grad-cost I]\n"
    "  A: bp dp mp gpipe 1f1b pipedream spectrain petra interlocking local parle. Prints each rank's\n"
    "  timeline (F3 = forward of micro-batch 3, B3 = its backward, AR = gradient allreduce,\n"
    "  U = optimizer step; interlocking: L3 = aux-head loss, i3 = input-only backward), its idle\n"
    "  fraction and, for flushed pipelines, the bound (S-1)/(M+S-1). --no-stash: pipedream\n"
    "  without weight stashing; petra: --accum K backwards per step, --stash-params,\n"
    "  --reconstruct (every stage inverts its top block). For interlocking, --n is n-wise\n"
    "  (2 = pairwise, the default) and M counts mini-batches (one step each).\n"
    "  parle: K inner steps of M micro-batches each, then one sync (ElasticSync).\n"
    "  --events FILE writes one JSON object per compute span (tools/plot_schedule.py draws it).\n";

}  // namespace

int scheduleCommand(const std::vector<std::string>& args, std::ostream& out) {
  std::string algo = "1f1b";
  ScheduleSpec spec;
  spec.stages = 4;
  spec.microbatches = 8;
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
    else if (a == "--stages") spec.stages = toInt(a, value(), 1, 1024);
    else if (a == "--microbatches" || a == "--mb") spec.microbatches = toInt(a, value(), 1, 1 << 16);
    else if (a == "--replicas") spec.replicas = toInt(a, value(), 1, 1024);
    else if (a == "--steps") spec.steps = toInt(a, value(), 1, 1 << 16);
    else if (a == "--vertical-sync") spec.verticalSync = true;
    else if (a == "--forward-cost") costs.forward = toNum(a, value());
    else if (a == "--backward-cost") costs.backward = toNum(a, value());
    else if (a == "--program") showProgram = true;
    else if (a == "--no-stash") spec.stash = false;
    else if (a == "--accum") spec.accumSteps = toInt(a, value(), 1, 4096);
    else if (a == "--stash-params") spec.stashParams = true;
    else if (a == "--reconstruct") reconstruct = true;
    else if (a == "--events") eventsFile = value();
    else if (a == "--n") spec.distance = toInt(a, value(), 1, 1 << 20) - 1;
    else if (a == "--pairwise-mode") spec.pairwise = parsePairwiseMode(value());
    else if (a == "--aux-cost") costs.aux = toNum(a, value());
    else if (a == "--input-grad-cost") costs.inputGrad = toNum(a, value());
    else throw ConfigError("unexpected argument '" + args[i] + "'\n" + kHelp);
  }
  auto sched = makeSchedule(algo);
  if (reconstruct) spec.reconFrom.assign(size_t(spec.stages), true);
  if (algo == "local") spec.distance = 0;
  if (algo == "interlocking" || algo == "local") {
    spec.boundedSends = true;
    InterlockRule{.components = spec.stages, .distance = spec.distance, .mode = spec.pairwise}.validate("--n");
  }
  if (algo == "parle") spec.microbatches *= spec.steps;  // --microbatches counts per inner step
  else if (spec.steps != 1) throw ConfigError("--steps applies to --algo parle");
  if (sched->maxStages() > 0 && spec.stages > sched->maxStages())
    throw ConfigError("--algo " + algo + " runs " + std::to_string(sched->maxStages()) + " stage per replica");
  out << algo << ": " << spec.stages << " stage(s) x " << spec.replicas << " replica(s), " << spec.microbatches
      << " micro-batch(es) per round; forward cost " << costs.forward << ", backward cost " << costs.backward << "\n";
  if (showProgram) {
    for (int s = 0; s < spec.stages; ++s) {
      out << "stage " << s << " program:\n";
      const Program p = sched->build(s, spec);
      for (size_t k = 0; k < p.size(); ++k) {
        out << "  step " << std::setw(3) << k << ":";
        for (const Instr& in : p[k]) out << "  " << str(in);
        out << "\n";
      }
    }
  }
  const SimResult r = simulate(*sched, spec, costs);
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
  if (sched->flushed() && spec.stages > 1)
    out << "bound for a flushed pipeline (S-1)/(M+S-1) = " << std::fixed << std::setprecision(1)
        << 100.0 * (spec.stages - 1) / (spec.microbatches + spec.stages - 1) << "%\n";
  out << "valid: every send matched by one receive, slots written before read, no deadlock\n";
  return 0;
}

}  // namespace sw
