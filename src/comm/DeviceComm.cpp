// Device-tensor transport (see DeviceComm.h). The staged communicator here uses only the
// copier's copies, so it serves any device backend, the staging test backend included; the NCCL
// communicator (comm/Nccl.h) is preferred for CUDA because it never touches the host.
#include "comm/DeviceComm.h"

#include "core/Error.h"
#ifdef SW_NCCL_COMM
#include "comm/Nccl.h"
#endif

namespace sw {
namespace {

// Device tensors: device -> host copy (the backend's copy returns once the host data is there),
// the MPI operation on the host copy, and on wait() the copy back to the device. Host tensors
// pass through untouched.
class StagedCommunicator : public WrappingCommunicator {
 public:
  StagedCommunicator(CommPtr host, TensorCopier& be) : WrappingCommunicator(std::move(host)), be_(be) {}
  CommPtr split(int color, int key, const std::string& name) const override {
    CommPtr sub = host_->split(color, key, name);
    if (!sub) return nullptr;
    return std::make_unique<StagedCommunicator>(std::move(sub), be_);
  }

  // The MPI work keeps the host copy alive until it completes.
  WorkPtr send(const Tensor& t, int peer, int tag) override { return host_->send(be_.toHost(t), peer, tag); }
  WorkPtr recv(Tensor& t, int peer, int tag) override {
    if (t.device().isCpu()) return host_->recv(t, peer, tag);
    Tensor h = Tensor::empty(t.shape());
    return backToDevice(host_->recv(h, peer, tag), h, t);
  }
  WorkPtr allReduce(Tensor& t, ReduceOp op) override {
    if (t.device().isCpu()) return host_->allReduce(t, op);
    Tensor h = be_.toHost(t);
    return backToDevice(host_->allReduce(h, op), h, t);
  }
  WorkPtr broadcast(Tensor& t, int root) override {
    if (t.device().isCpu()) return host_->broadcast(t, root);
    Tensor h = be_.toHost(t);
    return backToDevice(host_->broadcast(h, root), h, t);
  }
  WorkPtr allGather(const Tensor& in, Tensor& out) override {
    if (out.device().isCpu()) return host_->allGather(be_.toHost(in), out);
    Tensor h = Tensor::empty(out.shape());
    return backToDevice(host_->allGather(be_.toHost(in), h), h, out);
  }

 protected:
  TensorCopier& be_;

 private:
  WorkPtr backToDevice(WorkPtr w, Tensor host, Tensor dev) {
    return withCompletion(std::move(w), [this, host, dev]() mutable { be_.copy(host, dev); });
  }
};

#ifdef SW_NCCL_COMM
// Collectives on NCCL, point-to-point staged through MPI. NCCL has no tags and runs a
// communicator's operations in issue order on one stream, so a schedule that posts a receive
// ahead of the send its peer waits for (the executor prefetches receives, as MPI allows) could
// deadlock on NCCL; MPI matches by tag in any order. Until pipelines are checked on GPUs,
// pipeline messages take the staged path (runtime.nccl_p2p = true sends them over NCCL too).
class CollectivesOnNccl final : public StagedCommunicator {
 public:
  CollectivesOnNccl(CommPtr host, TensorCopier& be)
      : StagedCommunicator(host->split(0, host->rank(), host->name() + ".p2p"), be),
        nccl_(makeNcclCommunicator(std::move(host), be.device().index, be.nativeStream())) {}
  CommPtr split(int color, int key, const std::string& name) const override {
    CommPtr sub = host_->split(color, key, name);
    if (!sub) return nullptr;
    return std::make_unique<CollectivesOnNccl>(std::move(sub), be_);
  }
  WorkPtr allReduce(Tensor& t, ReduceOp op) override { return nccl_->allReduce(t, op); }
  WorkPtr broadcast(Tensor& t, int root) override { return nccl_->broadcast(t, root); }
  WorkPtr allGather(const Tensor& in, Tensor& out) override { return nccl_->allGather(in, out); }

 private:
  CommPtr nccl_;
};
#endif

}  // namespace

CommPtr makeDeviceComm(CommPtr host, TensorCopier& be, bool ncclP2p, std::optional<DeviceCommKind> force) {
  const Device d = be.device();
  if (d.isCpu()) return host;
#ifdef SW_NCCL_COMM
  if (d.type == DeviceType::kCuda) {
    // Every rank reaches the same verdict (the same gathered identities), so all pick one kind.
    const DeviceCommKind kind = force ? *force
                                : host->size() > 1 && ranksShareGpu(*host, d.index) ? DeviceCommKind::kHostStaged
                                                                                      : DeviceCommKind::kNccl;
    if (kind == DeviceCommKind::kNccl) {
      if (ncclP2p) return makeNcclCommunicator(std::move(host), d.index, be.nativeStream());
      return std::make_unique<CollectivesOnNccl>(std::move(host), be);
    }
  }
#else
  (void)ncclP2p;
  if (force == DeviceCommKind::kNccl) throw CommError(host->name() + ": NCCL requested, the build has no NCCL");
#endif
  return std::make_unique<StagedCommunicator>(std::move(host), be);
}

DeviceCommKind deviceCommKind(const Communicator& c) {
#ifdef SW_NCCL_COMM
  if (dynamic_cast<const CollectivesOnNccl*>(&c) || isNcclCommunicator(c)) return DeviceCommKind::kNccl;
#endif
  if (dynamic_cast<const StagedCommunicator*>(&c)) return DeviceCommKind::kHostStaged;
  throw CommError(c.name() + " is not a device communicator");
}

CommPtr makeDeviceWorld(Communicator& world, TensorCopier& be, bool ncclP2p) {
  std::vector<double> hi{be.device().isCpu() ? 0.0 : 1.0}, lo = hi;
  world.allReduceValues(hi, ReduceOp::kMax);
  world.allReduceValues(lo, ReduceOp::kMin);
  if (hi != lo)
    throw ConfigError("runtime.device: some ranks train on a GPU and others on the CPU (auto on a job whose hosts "
                      "differ); set runtime.device = cpu or cuda");
  if (be.device().isCpu() || world.size() == 1) return nullptr;
  return makeDeviceComm(world.split(0, world.rank(), "world"), be, ncclP2p);
}

}  // namespace sw
