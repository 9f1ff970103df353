// The staging test backend: the CPU backend's arithmetic on host memory tagged as a device
// (Device::stagingTest()). The trainers must treat its tensors as device tensors: MPI, HDF5 and
// Tensor's host helpers refuse them, and Backend::toHost / fromHost really copy. So a training
// run on it walks every host <-> device step a GPU run takes, without a GPU, and must give the
// CPU result bit for bit (the copies are exact, the arithmetic is the CPU backend's).
#include <cstring>

#include "backend/cpu/CpuBackend.h"
#include "core/Error.h"

namespace sw {
namespace {

class StagingTestBackend final : public CpuBackend {
 public:
  using CpuBackend::CpuBackend;
  std::string name() const override { return "cpu-staged"; }
  Device device() const override { return Device::stagingTest(); }

  Tensor empty(const Shape& s) override {
    Tensor host = Tensor::empty(s);
    // Same host block, device tag; the tagged storage owns the host one.
    auto st = std::make_shared<Storage>();
    st->ptr = host.data();
    st->bytes = host.bytes();
    st->device = device();
    st->deleter = [owner = host.storage()](void*, size_t) mutable { owner.reset(); };
    return Tensor(std::move(st), s);
  }
  Tensor zeros(const Shape& s) override {
    Tensor t = empty(s);
    if (t.numel()) std::memset(t.data(), 0, t.bytes());
    return t;
  }
  // Any pair of host and tagged tensors: both are host memory underneath.
  void copy(const Tensor& src, Tensor& dst) override {
    if (src.numel() != dst.numel()) throw ShapeError("copy " + src.shape().str() + " -> " + dst.shape().str());
    if (src.numel() == 0 || src.data() == dst.data()) return;
    std::memcpy(dst.data(), src.data(), src.bytes());
  }
};

}  // namespace

std::unique_ptr<Backend> makeStagingTestBackend(int threads, CpuConv conv) {
  auto be = std::make_unique<StagingTestBackend>(threads);
  be->setConvImpl(conv);
  return be;
}

}  // namespace sw
