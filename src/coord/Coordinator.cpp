// Control-plane collectives of a run.
#include "coord/Coordinator.h"

#include <vector>

namespace sw {
namespace {
bool g_agreedFailure = false;
}  // namespace

bool failureWasAgreed() { return g_agreedFailure; }

void agree(Communicator& world, const std::function<void()>& phase) {
  std::exception_ptr err;
  int code = 0;
  try {
    phase();
  } catch (const InputError&) {
    err = std::current_exception();
    code = 2;
  } catch (const PeerFailure&) {
    err = std::current_exception();
    code = 1;  // already agreed inside; never the reported cause
  } catch (...) {
    err = std::current_exception();
    code = 3;
  }
  // [max code, min failing rank]: one collective decides for everybody.
  std::vector<double> v{double(code), code ? -double(world.rank()) : -1e9};
  world.allReduceValues(v, ReduceOp::kMax);
  if (v[0] > 0) g_agreedFailure = true;
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
