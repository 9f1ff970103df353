// Control-plane collectives of a run.
#include "coord/Coordinator.h"

#include <vector>

namespace sw {
namespace {
bool g_agreedFailure = false;
ErrorReport g_report;

// Who prints which of the gathered messages (one per rank, "" where the rank's own phase passed).
ErrorReport reportFor(const std::vector<std::string>& why, int me) {
  std::vector<int> failed;
  for (size_t r = 0; r < why.size(); ++r)
    if (!why[r].empty()) failed.push_back(int(r));
  ErrorReport rep;
  if (failed.size() < 2) return rep;
  for (int r : failed)
    if (why[size_t(r)] != why[size_t(failed.front())]) return rep;  // rank-specific: each says its own
  rep.silent = me != failed.front();
  if (failed.size() == why.size()) {
    rep.who = "stagewise: ";
  } else {
    std::string list;
    for (int r : failed) list += (list.empty() ? "" : ",") + std::to_string(r);
    rep.who = "[ranks " + list + " of " + std::to_string(why.size()) + "] ";
  }
  return rep;
}
}  // namespace

bool failureWasAgreed() { return g_agreedFailure; }
const ErrorReport& agreedErrorReport() { return g_report; }

void agree(Communicator& world, const std::function<void()>& phase) {
  std::exception_ptr err;
  int code = 0;
  std::string why;
  try {
    phase();
  } catch (const InputError& e) {
    err = std::current_exception();
    code = 2;
    why = std::string("2") + e.what();
  } catch (const PeerFailure&) {
    err = std::current_exception();
    code = 1;  // already agreed inside; never the reported cause
  } catch (const std::exception& e) {
    err = std::current_exception();
    code = 3;
    why = std::string("3") + e.what();
  } catch (...) {
    err = std::current_exception();
    code = 3;
    why = "3?";
  }
  // [max code, min failing rank]: one collective decides for everybody.
  std::vector<double> v{double(code), code ? -double(world.rank()) : -1e9};
  world.allReduceValues(v, ReduceOp::kMax);
  if (v[0] > 0) {
    g_agreedFailure = true;
    // Who reports: every rank learns the others' messages (the communicator still works).
    if (world.size() > 1 && v[0] >= 2) g_report = reportFor(allGatherStrings(world, why), world.rank());
  }
  if (err) std::rethrow_exception(err);
  if (v[0] > 0) throw PeerFailure(v[0] >= 2 ? int(v[0]) : 3, int(-v[1]));
}

RoundTotals roundEnd(Communicator& world, double lossSum, int64_t correct, int64_t seen, bool stopLocal) {
  std::vector<double> v{lossSum, double(correct), double(seen), stopLocal ? 1.0 : 0.0};
  world.allReduceValues(v, ReduceOp::kSum);
  return {v[0], v[1], v[2], v[3] > 0};
}

void commitCheckpoint(Communicator& world, const std::function<void()>& commitFn) {
  world.barrier();
  if (world.rank() == 0) commitFn();
  // Nobody moves on (and possibly fails) before the marker is down, so a crash right after a
  // checkpoint always leaves a resumable one.
  world.barrier();
}

}  // namespace sw
