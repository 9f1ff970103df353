// MPI communicator. All operations are non-blocking MPI calls (Isend/Irecv/Iallreduce/Ibcast/
// Iallgather/Ibarrier); wait() polls with MPI_Test under a watchdog deadline instead of blocking
// in MPI_Wait, so a dead or stuck peer becomes a CommError (and then a job abort) rather than a
// hang. The poll backs off to short sleeps after a burst of spins: ranks oversubscribe cores in
// the single-node simulation, and a spinning receiver would steal the sender's CPU.
#include "comm/Mpi.h"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <thread>

#include "core/Error.h"

namespace sw {
namespace {

// How long abort() lets MPI_Abort try to take the job down before this process exits alone.
constexpr int kAbortGraceSeconds = 3;
// The status abort() leaves with, for its SIGTERM handler.
volatile std::sig_atomic_t gAbortCode = 3;

[[noreturn]] void mpiFail(int code, const std::string& what) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, msg, &len);
  throw CommError(what + ": " + std::string(msg, len));
}
void mpiCheck(int code, const std::string& what) {
  if (code != MPI_SUCCESS) mpiFail(code, what);
}

int countOf(const Tensor& t, const char* op) {
  if (t.numel() > INT_MAX)
    throw CommError(std::string(op) + ": tensor of " + std::to_string(t.numel()) +
                    " elements exceeds one MPI message");
  if (t.numel() > 0 && !t.device().isCpu())
    throw CommError(std::string(op) + ": MPI needs host tensors (this Open MPI is not CUDA-aware)");
  return int(t.numel());
}

MPI_Op mpiOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kAvg: return MPI_SUM;
    case ReduceOp::kMax: return MPI_MAX;
    case ReduceOp::kMin: return MPI_MIN;
  }
  return MPI_SUM;
}

using Clock = std::chrono::steady_clock;

class MpiWork : public Work {
 public:
  MpiWork(MPI_Request req, std::string what, double timeout, Tensor keep = {}, float scale = 1.f,
          Tensor scaled = {})
      : req_(req), what_(std::move(what)), timeout_(timeout), keep_(std::move(keep)),
        scale_(scale), scaled_(std::move(scaled)) {}
  // Never blocks: an unfinished operation here means the rank is unwinding from an error. The
  // request is released to complete (or die with the job) in the background, and its buffer is
  // deliberately leaked so MPI can never write into freed memory.
  ~MpiWork() override {
    if (req_ == MPI_REQUEST_NULL) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Request_free(&req_);
    if (keep_.defined()) new Tensor(std::move(keep_));
  }
  bool done() override {
    if (req_ == MPI_REQUEST_NULL) return true;
    int flag = 0;
    mpiCheck(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE), what_);
    if (flag) finish();
    return flag != 0;
  }
  void wait() override {
    if (req_ == MPI_REQUEST_NULL) return;
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_);
    int spins = 0;
    auto nap = std::chrono::microseconds(20);
    while (!done()) {
      if (++spins < 200) continue;
      if (Clock::now() > deadline)
        throw CommError(what_ + ": no completion within runtime.comm_timeout = " +
                        std::to_string(int(timeout_)) + " s (peer dead or stuck?)");
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(500));
    }
  }

 private:
  void finish() {
    req_ = MPI_REQUEST_NULL;
    if (scaled_.defined() && scale_ != 1.f) {
      float* p = scaled_.data();
      for (int64_t i = 0, n = scaled_.numel(); i < n; ++i) p[i] *= scale_;
    }
    keep_ = Tensor();
  }
  MPI_Request req_;
  std::string what_;
  double timeout_;
  Tensor keep_;
  float scale_;
  Tensor scaled_;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owns, std::string name, CommOptions opts)
      : comm_(comm), owns_(owns), name_(std::move(name)) {
    opts_ = opts;
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    // Errors come back as codes we turn into exceptions (the default handler aborts silently).
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_ && !finalized) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }

  CommPtr split(int color, int key, const std::string& name) const override {
    MPI_Comm c;
    mpiCheck(MPI_Comm_split(comm_, color, key, &c), name_ + ": split");
    return std::make_unique<MpiCommunicator>(c, true, name, opts_);
  }

  WorkPtr send(const Tensor& t, int peer, int tag) override {
    checkPeer(peer, "send");
    MPI_Request r;
    const int n = countOf(t, "send");
    mpiCheck(MPI_Isend(t.data(), n, MPI_FLOAT, peer, tag, comm_, &r), where("send to", peer, tag));
    return std::make_unique<MpiWork>(r, where("send to", peer, tag), opts_.timeoutSeconds, t);
  }
  WorkPtr recv(Tensor& t, int peer, int tag) override {
    checkPeer(peer, "recv");
    MPI_Request r;
    const int n = countOf(t, "recv");
    mpiCheck(MPI_Irecv(t.data(), n, MPI_FLOAT, peer, tag, comm_, &r),
             where("receive from", peer, tag));
    return std::make_unique<MpiWork>(r, where("receive from", peer, tag), opts_.timeoutSeconds, t);
  }
  WorkPtr allReduce(Tensor& t, ReduceOp op) override {
    MPI_Request r;
    const int n = countOf(t, "allReduce");
    mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, t.data(), n, MPI_FLOAT, mpiOp(op), comm_, &r),
             name_ + ": allreduce");
    const float scale = op == ReduceOp::kAvg ? 1.f / float(size_) : 1.f;
    return std::make_unique<MpiWork>(r, name_ + ": allreduce of " + std::to_string(n) + " floats",
                                     opts_.timeoutSeconds, t, scale, t);
  }
  WorkPtr broadcast(Tensor& t, int root) override {
    MPI_Request r;
    const int n = countOf(t, "broadcast");
    mpiCheck(MPI_Ibcast(t.data(), n, MPI_FLOAT, root, comm_, &r), name_ + ": broadcast");
    return std::make_unique<MpiWork>(r, name_ + ": broadcast from rank " + std::to_string(root),
                                     opts_.timeoutSeconds, t);
  }
  WorkPtr allGather(const Tensor& in, Tensor& out) override {
    const int n = countOf(in, "allGather");
    if (out.numel() != in.numel() * size_)
      throw ShapeError(name_ + ": allGather output has " + std::to_string(out.numel()) +
                       " elements, expected " + std::to_string(in.numel() * size_));
    MPI_Request r;
    mpiCheck(MPI_Iallgather(in.data(), n, MPI_FLOAT, out.data(), n, MPI_FLOAT, comm_, &r),
             name_ + ": allgather");
    // Both buffers stay alive until MPI is done with them: a caller may pass a temporary input
    // (the staged path's host copy) and drop it right after posting.
    return withCompletion(std::make_unique<MpiWork>(r, name_ + ": allgather", opts_.timeoutSeconds, out),
                          [in] {});
  }
  void barrier() override {
    MPI_Request r;
    mpiCheck(MPI_Ibarrier(comm_, &r), name_ + ": barrier");
    MpiWork(r, name_ + ": barrier", opts_.timeoutSeconds).wait();
  }
  void allReduceValues(std::vector<double>& v, ReduceOp op) override {
    if (v.empty()) return;
    MPI_Request r;
    mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_DOUBLE, mpiOp(op), comm_, &r),
             name_ + ": allreduce");
    MpiWork(r, name_ + ": allreduce of control values", opts_.timeoutSeconds).wait();
    if (op == ReduceOp::kAvg)
      for (double& x : v) x /= size_;
  }
  void broadcastString(std::string& s, int root) override {
    int64_t n = int64_t(s.size());
    MPI_Request r;
    mpiCheck(MPI_Ibcast(&n, 1, MPI_INT64_T, root, comm_, &r), name_ + ": broadcast");
    MpiWork(r, name_ + ": broadcast of a string length", opts_.timeoutSeconds).wait();
    s.resize(size_t(n));
    if (n == 0) return;
    mpiCheck(MPI_Ibcast(s.data(), int(n), MPI_CHAR, root, comm_, &r), name_ + ": broadcast");
    MpiWork(r, name_ + ": broadcast of a string", opts_.timeoutSeconds).wait();
  }
  [[noreturn]] void abort(int code) override {
    // MPI_Abort reports to the launcher before it kills the job; when the launcher's host is
    // the one that became unreachable (a cut link), Open MPI waits in that report until its
    // own daemon kills the process, and the exit status is lost. Bound it: a few seconds
    // after entering MPI_Abort this process ends itself with the status it was given.
    // Open MPI's daemons answer an abort with SIGTERM, then SIGKILL a second later; leave with
    // our own status on the SIGTERM instead of being killed without one.
    gAbortCode = code;
    std::signal(SIGTERM, [](int) { std::_Exit(gAbortCode); });
    std::thread([code] {
      std::this_thread::sleep_for(std::chrono::seconds(kAbortGraceSeconds));
      std::fflush(stderr);
      std::_Exit(code);
    }).detach();
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  void checkPeer(int peer, const char* op) const {
    if (peer < 0 || peer >= size_ || peer == rank_)
      throw CommError(name_ + ": " + op + " with invalid peer " + std::to_string(peer) +
                      " (this is rank " + std::to_string(rank_) + " of " + std::to_string(size_) + ")");
  }
  std::string where(const char* verb, int peer, int tag) const {
    return name_ + " rank " + std::to_string(rank_) + ": " + verb + " rank " + std::to_string(peer) +
           " (tag " + std::to_string(tag) + ")";
  }
  MPI_Comm comm_;
  bool owns_;
  std::string name_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

MpiRuntime::MpiRuntime(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw CommError("MPI_Init_thread failed");
    owns_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &localRank_);
  MPI_Comm_size(local, &localSize_);
  MPI_Comm_free(&local);
  world_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, false, "world", CommOptions{});
}

MpiRuntime::~MpiRuntime() {
  world_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}

std::string MpiRuntime::hostName() {
  char h[256] = {0};
  gethostname(h, sizeof h - 1);
  return h;
}

bool MpiRuntime::initialized() {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  return inited && !finalized;
}

}  // namespace sw
