// Communicator: point-to-point and collective communication between ranks, with asynchronous
// Work handles (the PyTorch c10d shape). Sized by the Tensor, never by a byte count. MPI is the
// implementation everywhere (host buffers); NCCL plugs in behind the same interface for device
// tensors. Every wait is bounded by a watchdog timeout and throws CommError naming the peer.
#pragma once
#include <functional>
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

// A communicator layered over another (`host_`, same ranks): rank, size, name and the control
// plane go to it unchanged; subclasses decide how tensors travel (device communicators).
class WrappingCommunicator : public Communicator {
 public:
  explicit WrappingCommunicator(CommPtr host) : host_(std::move(host)) { opts_ = host_->options(); }
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const std::string& name() const override { return host_->name(); }
  void barrier() override { host_->barrier(); }
  void allReduceValues(std::vector<double>& v, ReduceOp op) override { host_->allReduceValues(v, op); }
  void broadcastString(std::string& s, int root) override { host_->broadcastString(s, root); }
  [[noreturn]] void abort(int code) override {
    host_->abort(code);
    __builtin_unreachable();  // Communicator::abort never returns
  }

 protected:
  CommPtr host_;
};

// Every rank's `mine`, in rank order, on every rank (control plane: one string broadcast per rank).
std::vector<std::string> allGatherStrings(Communicator& c, const std::string& mine);

// Waits for every work in `works` and clears it.
void waitAll(std::vector<WorkPtr>& works);

// `inner`, with `onDone` run once, on the waiting thread, after it completes (a staged
// communicator copies a host buffer back to the device there). done() polls `inner`; like every
// Work, destroying it unfinished waits (and swallows the error the caller already saw).
WorkPtr withCompletion(WorkPtr inner, std::function<void()> onDone);

// The one-process communicator (size 1): collectives are identities, p2p is an error. Lets the
// single-process trainer and unit tests run the same code without MPI.
CommPtr makeSelfCommunicator();

}  // namespace sw
