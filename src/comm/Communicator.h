// Communicator: point-to-point and collective communication between ranks, with asynchronous
// Work handles (the PyTorch c10d shape). Sized by the Tensor, never by a byte count. MPI is the
// implementation everywhere (host buffers); NCCL plugs in behind the same interface for device
// tensors. Every wait is bounded by a watchdog timeout and throws CommError naming the peer.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/Tensor.h"

namespace sw {

enum class ReduceOp { kSum, kAvg, kMax, kMin };

// A pending operation. wait() blocks until it completes (or throws CommError on the watchdog
// timeout); done() polls without blocking. Destroying an unfinished Work waits for it.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool done() = 0;
};
using WorkPtr = std::unique_ptr<Work>;

struct CommOptions {
  double timeoutSeconds = 300;  // watchdog: a wait longer than this is a dead or stuck peer
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Human-readable name used in errors ("world", "pipe[replica 1]", "data[stage 0]").
  virtual const std::string& name() const = 0;
  // Ranks with equal color form a new communicator, ordered by key.
  virtual std::unique_ptr<Communicator> split(int color, int key, const std::string& name) const = 0;

  // Point to point. `t` must stay alive and unmodified (send) / untouched (recv) until wait().
  virtual WorkPtr send(const Tensor& t, int peer, int tag) = 0;
  virtual WorkPtr recv(Tensor& t, int peer, int tag) = 0;
  // Collectives, in place. Every rank of the communicator must issue them in the same order.
  virtual WorkPtr allReduce(Tensor& t, ReduceOp op) = 0;
  virtual WorkPtr broadcast(Tensor& t, int root) = 0;
  // out = concatenation of every rank's `in` along a new leading dimension ([size, in...]).
  virtual WorkPtr allGather(const Tensor& in, Tensor& out) = 0;
  virtual void barrier() = 0;

  // Small control-plane helpers (blocking): reductions of doubles and a string broadcast.
  virtual void allReduceValues(std::vector<double>& v, ReduceOp op) = 0;
  virtual void broadcastString(std::string& s, int root) = 0;

  // Terminates the whole job (every rank of the world) with `code`. Does not return.
  [[noreturn]] virtual void abort(int code) = 0;

  const CommOptions& options() const { return opts_; }
  void setOptions(const CommOptions& o) { opts_ = o; }

 protected:
  CommOptions opts_;
};
using CommPtr = std::unique_ptr<Communicator>;

// Waits for every work in `works` and clears it.
void waitAll(std::vector<WorkPtr>& works);

// The one-process communicator (size 1): collectives are identities, p2p is an error. Lets the
// single-process trainer and unit tests run the same code without MPI.
CommPtr makeSelfCommunicator();

}  // namespace sw
