// Shared pieces of the communication layer and the size-1 communicator.
#include "comm/Communicator.h"

#include <cstdlib>

#include "core/Error.h"

namespace sw {

std::vector<std::string> allGatherStrings(Communicator& c, const std::string& mine) {
  std::vector<std::string> all(size_t(c.size()));
  for (int r = 0; r < c.size(); ++r) {
    all[size_t(r)] = r == c.rank() ? mine : std::string();
    c.broadcastString(all[size_t(r)], r);
  }
  return all;
}

void waitAll(std::vector<WorkPtr>& works) {
  for (auto& w : works)
    if (w) w->wait();
  works.clear();
}

namespace {

class CompletionWork final : public Work {
 public:
  CompletionWork(WorkPtr inner, std::function<void()> onDone) : inner_(std::move(inner)), onDone_(std::move(onDone)) {}
  // Never blocks: a work dropped unwaited means the rank is unwinding from an error, and waiting
  // could cost the whole watchdog timeout per pending message. The inner work decides about its
  // own buffers (MPI leaks an unfinished one's); what onDone holds (staging buffers) is leaked
  // too while the operation may still run, so nothing can write into freed memory.
  ~CompletionWork() override {
    if (finished_ || !onDone_) return;
    bool done = false;
    try {
      done = inner_->done();
    } catch (...) {
    }
    if (!done) new std::function<void()>(std::move(onDone_));
  }
  void wait() override {
    if (finished_) return;
    finished_ = true;
    inner_->wait();
    if (onDone_) onDone_();
  }
  bool done() override { return finished_ || inner_->done(); }

 private:
  WorkPtr inner_;
  std::function<void()> onDone_;
  bool finished_ = false;
};

class DoneWork : public Work {
 public:
  void wait() override {}
  bool done() override { return true; }
};

class SelfCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  CommPtr split(int, int, const std::string&) const override {
    return std::make_unique<SelfCommunicator>();
  }
  WorkPtr send(const Tensor&, int peer, int) override {
    throw CommError("send to rank " + std::to_string(peer) + " on a one-rank communicator");
  }
  WorkPtr recv(Tensor&, int peer, int) override {
    throw CommError("receive from rank " + std::to_string(peer) + " on a one-rank communicator");
  }
  WorkPtr allReduce(Tensor&, ReduceOp) override { return std::make_unique<DoneWork>(); }
  WorkPtr broadcast(Tensor&, int) override { return std::make_unique<DoneWork>(); }
  WorkPtr allGather(const Tensor& in, Tensor& out) override {
    SW_CHECK(out.numel() == in.numel(), "allGather: output must hold size() inputs");
    std::copy(in.data(), in.data() + in.numel(), out.data());
    return std::make_unique<DoneWork>();
  }
  void barrier() override {}
  void allReduceValues(std::vector<double>&, ReduceOp) override {}
  void broadcastString(std::string&, int) override {}
  [[noreturn]] void abort(int code) override { std::_Exit(code); }

 private:
  std::string name_ = "self";
};

}  // namespace

WorkPtr withCompletion(WorkPtr inner, std::function<void()> onDone) {
  return std::make_unique<CompletionWork>(std::move(inner), std::move(onDone));
}

CommPtr makeSelfCommunicator() { return std::make_unique<SelfCommunicator>(); }

}  // namespace sw
