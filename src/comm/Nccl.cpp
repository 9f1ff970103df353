// The NCCL communicator (see Nccl.h).
#include "comm/Nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "comm/Mpi.h"
#include "core/Clock.h"
#include "core/Error.h"

namespace sw {
namespace {

void cudaCall(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) throw CommError(what + ": CUDA error " + cudaGetErrorString(e));
}

// The control plane and host tensors go to the host communicator; only device tensors take the
// subclass's (NCCL's) path.
class DeviceCommBase : public WrappingCommunicator {
 public:
  DeviceCommBase(CommPtr host, int device, cudaStream_t compute)
      : WrappingCommunicator(std::move(host)), device_(device), compute_(compute) {}
  CommPtr split(int color, int key, const std::string& name) const override {
    CommPtr sub = host_->split(color, key, name);
    if (!sub) return nullptr;
    return makeNcclCommunicator(std::move(sub), device_, compute_);
  }

  WorkPtr send(const Tensor& t, int peer, int tag) override {
    return t.device().isCpu() ? host_->send(t, peer, tag) : deviceSend(t, peer, tag);
  }
  WorkPtr recv(Tensor& t, int peer, int tag) override {
    return t.device().isCpu() ? host_->recv(t, peer, tag) : deviceRecv(t, peer, tag);
  }
  WorkPtr allReduce(Tensor& t, ReduceOp op) override {
    return t.device().isCpu() ? host_->allReduce(t, op) : deviceAllReduce(t, op);
  }
  WorkPtr broadcast(Tensor& t, int root) override {
    return t.device().isCpu() ? host_->broadcast(t, root) : deviceBroadcast(t, root);
  }
  WorkPtr allGather(const Tensor& in, Tensor& out) override {
    if (in.device().isCpu() != out.device().isCpu())
      throw CommError(name() + ": allGather between " + in.device().str() + " and " + out.device().str());
    return in.device().isCpu() ? host_->allGather(in, out) : deviceAllGather(in, out);
  }

 protected:
  virtual WorkPtr deviceSend(const Tensor& t, int peer, int tag) = 0;
  virtual WorkPtr deviceRecv(Tensor& t, int peer, int tag) = 0;
  virtual WorkPtr deviceAllReduce(Tensor& t, ReduceOp op) = 0;
  virtual WorkPtr deviceBroadcast(Tensor& t, int root) = 0;
  virtual WorkPtr deviceAllGather(const Tensor& in, Tensor& out) = 0;
  void checkDevice(const Tensor& t, const char* op) const {
    if (!(t.device() == Device::cuda(device_)))
      throw CommError(name() + ": " + op + " of a tensor on " + t.device().str() +
                      ", communicator on cuda:" + std::to_string(device_));
  }

  int device_;
  cudaStream_t compute_;
};

// ---- NCCL ---------------------------------------------------------------------------------------

// NCCL 2.14 and later create communicators non-blocking (ncclConfig_t::blocking = 0): start-up
// returns at once and is polled under the watchdog, so a rank that never joins (or a transport
// that hangs while connecting) ends in a CommError naming the rank instead of a hang.
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0)
#define SW_NCCL_NONBLOCKING 1
#endif

void ncclCall(ncclResult_t r, const std::string& what) {
  if (r != ncclSuccess && r != ncclInProgress)
    throw CommError(what + ": NCCL error " + ncclGetErrorString(r));
}


// Shared so a Work outliving its communicator's last operation still sees a valid comm.
struct NcclState {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  bool aborted = false;
  std::string name;
  ~NcclState() {
    // ncclCommDestroy finalizes first (blocking, also for a non-blocking communicator) when
    // ncclCommFinalize was not called; abort already freed an aborted one (comm is then null).
    if (comm) ncclCommDestroy(comm);
    if (stream) cudaStreamDestroy(stream);
  }
  // Aborts the communicator: every pending kernel of it ends, and the freed handle is cleared so
  // no later work queries it.
  void abort() {
    if (aborted || !comm) return;
    aborted = true;
    ncclCommAbort(comm);
    comm = nullptr;
  }
  // Aborts and throws.
  [[noreturn]] void fail(const std::string& why) {
    abort();
    throw CommError(name + ": " + why + " (NCCL communicator aborted)");
  }
  void throwIfAborted(const std::string& what) const {
    if (aborted) throw CommError(name + ": " + what + ": the communicator was aborted by an earlier failure");
  }
  // A non-blocking communicator answers ncclInProgress while its start-up, or the enqueueing of
  // an operation, is still under way; nothing else may be called on it (nor work queued on its
  // stream) until it reports ncclSuccess. Polls until then, failing on an error or after
  // `timeout` seconds.
  void settle(const std::string& what, double timeout) {
    throwIfAborted(what);
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t q = ncclCommGetAsyncError(comm, &state);
      if (q != ncclSuccess) fail(what + ": ncclCommGetAsyncError: " + ncclGetErrorString(q));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(what + ": " + ncclGetErrorString(state));
      if (secondsSince(start) > timeout)
        fail(what + ": not finished after " + std::to_string(int(timeout)) +
             " s (a rank that never joined, or a transport that cannot connect?)");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
};

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<NcclState> st, cudaEvent_t done, cudaStream_t compute, double timeout,
           std::string what)
      : st_(std::move(st)), done_(done), compute_(compute), timeout_(timeout), what_(std::move(what)) {}
  // Never waits out the watchdog: an unfinished operation dropped unwaited means the rank is
  // unwinding from an error, so the communicator is aborted (its kernels end at once) instead.
  ~NcclWork() override {
    if (!waited_ && cudaEventQuery(done_) == cudaErrorNotReady) st_->abort();
    cudaEventDestroy(done_);
  }
  // nccl-tests' testStreamSynchronize: poll the event, the async error and the watchdog.
  void wait() override {
    if (waited_) return;
    st_->throwIfAborted(what_);
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      const cudaError_t q = cudaEventQuery(done_);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) st_->fail(what_ + ": CUDA error " + cudaGetErrorString(q));
      ncclResult_t async = ncclSuccess;
      st_->throwIfAborted(what_);  // another work's failure freed the communicator
      ncclCommGetAsyncError(st_->comm, &async);
      if (async != ncclSuccess && async != ncclInProgress)
        st_->fail(what_ + ": " + ncclGetErrorString(async));
      if (secondsSince(start) > timeout_)
        st_->fail(what_ + ": no completion after " + std::to_string(int(timeout_)) +
                  " s (dead or stuck peer?)");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    waited_ = true;
    // Later kernels on the compute stream read the result: order them after the operation.
    cudaCall(cudaStreamWaitEvent(compute_, done_, 0), what_);
  }
  bool done() override { return waited_ || cudaEventQuery(done_) == cudaSuccess; }

 private:
  std::shared_ptr<NcclState> st_;
  cudaEvent_t done_;
  cudaStream_t compute_;
  double timeout_;
  std::string what_;
  bool waited_ = false;
};

ncclRedOp_t ncclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return ncclSum;
    case ReduceOp::kAvg: return ncclAvg;
    case ReduceOp::kMax: return ncclMax;
    case ReduceOp::kMin: return ncclMin;
  }
  throw CommError("unknown reduce op");
}

class NcclCommunicator final : public DeviceCommBase {
 public:
  NcclCommunicator(CommPtr host, int device, cudaStream_t compute)
      : DeviceCommBase(std::move(host), device, compute), st_(std::make_shared<NcclState>()) {
    st_->name = name() + "[nccl]";
    // Bootstrap: rank 0 makes the id, the host communicator broadcasts its 128 bytes.
    ncclUniqueId id;
    std::string bytes;
    if (rank() == 0) {
      ncclCall(ncclGetUniqueId(&id), st_->name + ": ncclGetUniqueId");
      bytes.assign(id.internal, sizeof id.internal);
    }
    host_->broadcastString(bytes, 0);
    if (bytes.size() != sizeof id.internal) throw CommError(st_->name + ": bad NCCL unique id");
    std::memcpy(id.internal, bytes.data(), sizeof id.internal);
    cudaCall(cudaSetDevice(device), st_->name + ": cudaSetDevice");
    cudaCall(cudaStreamCreateWithFlags(&st_->stream, cudaStreamNonBlocking), st_->name + ": stream");
    const std::string who = "rank " + std::to_string(rank()) + " of " + std::to_string(size()) +
                            ", cuda:" + std::to_string(device);
#ifdef SW_NCCL_NONBLOCKING
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&st_->comm, size(), id, rank(), &config);
    if (r != ncclSuccess && r != ncclInProgress)
      st_->fail("ncclCommInitRankConfig (" + who + "): " + ncclGetErrorString(r));
    st_->settle("NCCL start-up (ncclCommInitRankConfig, " + who + ")", opts_.timeoutSeconds);
#else
    // Older NCCL: blocking start-up, not covered by the watchdog.
    ncclCall(ncclCommInitRank(&st_->comm, size(), id, rank()), st_->name + ": ncclCommInitRank (" + who + ")");
#endif
  }

 protected:
  // Orders the communication stream after the compute stream, runs `op` on it, returns its Work.
  // `keep`: the tensors the operation reads or writes. The work holds them until it is
  // destroyed: a tensor dropped by the caller right after posting (the executor's sends) must not
  // return to the caching allocator, and be reused on the compute stream, while NCCL still uses it.
  WorkPtr enqueue(const std::string& what, std::vector<Tensor> keep,
                  const std::function<ncclResult_t(cudaStream_t)>& op) {
    if (st_->aborted) throw CommError(st_->name + ": used after an abort");
    cudaEvent_t ready, done;
    cudaCall(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), what);
    cudaCall(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), what);
    cudaCall(cudaEventRecord(ready, compute_), what);
    cudaCall(cudaStreamWaitEvent(st_->stream, ready, 0), what);
    cudaEventDestroy(ready);  // released once the wait has been satisfied
    try {
      const ncclResult_t r = op(st_->stream);
      ncclCall(r, st_->name + ": " + what);
      // Non-blocking: the kernel may not be on the stream yet; the done event must follow it.
      if (r == ncclInProgress) st_->settle(what, opts_.timeoutSeconds);
    } catch (...) {
      cudaEventDestroy(done);
      throw;
    }
    cudaCall(cudaEventRecord(done, st_->stream), what);
    return withCompletion(
        std::make_unique<NcclWork>(st_, done, compute_, opts_.timeoutSeconds, st_->name + ": " + what),
        [keep = std::move(keep)] {});
  }
  std::string peerWhat(const char* op, int peer) const { return std::string(op) + " peer " + std::to_string(peer); }

  WorkPtr deviceSend(const Tensor& t, int peer, int) override {
    checkDevice(t, "send");
    return enqueue(peerWhat("send to", peer), {t}, [&](cudaStream_t s) {
      return ncclSend(t.data(), size_t(t.numel()), ncclFloat, peer, st_->comm, s);
    });
  }
  WorkPtr deviceRecv(Tensor& t, int peer, int) override {
    checkDevice(t, "recv");
    return enqueue(peerWhat("recv from", peer), {t}, [&](cudaStream_t s) {
      return ncclRecv(t.data(), size_t(t.numel()), ncclFloat, peer, st_->comm, s);
    });
  }
  WorkPtr deviceAllReduce(Tensor& t, ReduceOp op) override {
    checkDevice(t, "allReduce");
    return enqueue("allReduce", {t}, [&](cudaStream_t s) {
      return ncclAllReduce(t.data(), t.data(), size_t(t.numel()), ncclFloat, ncclOp(op), st_->comm, s);
    });
  }
  WorkPtr deviceBroadcast(Tensor& t, int root) override {
    checkDevice(t, "broadcast");
    return enqueue("broadcast", {t}, [&](cudaStream_t s) {
      return ncclBroadcast(t.data(), t.data(), size_t(t.numel()), ncclFloat, root, st_->comm, s);
    });
  }
  WorkPtr deviceAllGather(const Tensor& in, Tensor& out) override {
    checkDevice(in, "allGather");
    checkDevice(out, "allGather");
    if (out.numel() != in.numel() * size())
      throw CommError(name() + ": allGather of " + in.shape().str() + " into " + out.shape().str());
    return enqueue("allGather", {in, out}, [&](cudaStream_t s) {
      return ncclAllGather(in.data(), out.data(), size_t(in.numel()), ncclFloat, st_->comm, s);
    });
  }

 private:
  std::shared_ptr<NcclState> st_;
};

}  // namespace

namespace {
// 64-bit FNV-1a of "host/pci-bus-id": equal on two ranks iff they drive the same GPU.
uint64_t gpuIdentity(int device) {
  char bus[64] = {0};
  cudaCall(cudaDeviceGetPCIBusId(bus, sizeof bus, device), "cudaDeviceGetPCIBusId");
  const std::string key = MpiRuntime::hostName() + "/" + bus;
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

// The identities are gathered as four exact 16-bit floats each (a float holds integers up to
// 2^24 exactly).
bool ranksShareGpu(Communicator& host, int device) {
  const uint64_t id = gpuIdentity(device);
  Tensor mine = Tensor::empty(Shape{4});
  for (int i = 0; i < 4; ++i) mine.data()[i] = static_cast<float>((id >> (16 * i)) & 0xffff);
  Tensor all = Tensor::empty(Shape{host.size(), 4});
  host.allGather(mine, all)->wait();
  std::vector<std::vector<float>> ids;
  for (int r = 0; r < host.size(); ++r) ids.emplace_back(all.data() + 4 * r, all.data() + 4 * r + 4);
  for (size_t a = 0; a < ids.size(); ++a)
    for (size_t b = a + 1; b < ids.size(); ++b)
      if (ids[a] == ids[b]) return true;
  return false;
}

CommPtr makeNcclCommunicator(CommPtr host, int device, void* computeStream) {
  return std::make_unique<NcclCommunicator>(std::move(host), device, static_cast<cudaStream_t>(computeStream));
}

bool isNcclCommunicator(const Communicator& c) { return dynamic_cast<const NcclCommunicator*>(&c) != nullptr; }

}  // namespace sw
