// The device communicator (comm/DeviceComm.h) under mpirun: every operation on GPU tensors through
// both kinds (NCCL and host-staged MPI) against the values computed on the host, and the automatic choice (staged
// exactly when two ranks drive the same GPU), and NCCL start-up bounded by the watchdog when a rank
// never joins. Skips on every rank without a CUDA device.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>

#include "backend/Backend.h"
#include "comm/DeviceComm.h"
#include "core/Error.h"
#include "mpi/MpiTestUtil.h"

namespace sw {
namespace {

using mpitest::runtime;

class DeviceComm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    MpiRuntime& mpi = runtime();
    device_ = mpi.localRank() % cudaDeviceCount();
    be_ = makeCudaBackend(device_);
  }
  CommPtr make(DeviceCommKind kind) {
    CommPtr host = runtime().world().split(0, runtime().rank(), "devtest");
    return makeDeviceComm(std::move(host), *be_, /*ncclP2p=*/true, kind);
  }
  // Value i of rank r's tensor: distinct per rank and element, exact in float.
  static Tensor pattern(int64_t n, int r) {
    Tensor t = Tensor::empty(Shape{n});
    for (int64_t i = 0; i < n; ++i) t.data()[i] = float(r * 1000 + i % 997);
    return t;
  }
  void exercise(Communicator& c) {
    const int r = c.rank(), p = c.size();
    const int64_t n = 4099;
    Tensor d = be_->fromHost(pattern(n, r));
    c.allReduce(d, ReduceOp::kSum)->wait();
    Tensor h = be_->toHost(d);
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) {
      double want = 0;
      for (int q = 0; q < p; ++q) want += q * 1000 + i % 997;
      ok = ok && h.data()[i] == float(want);
    }
    EXPECT_TRUE(ok) << "allReduce sum";

    d = be_->fromHost(pattern(n, r));
    c.allReduce(d, ReduceOp::kMax)->wait();
    EXPECT_EQ(be_->toHost(d).data()[5], float((p - 1) * 1000 + 5)) << "allReduce max";

    d = be_->fromHost(pattern(n, r));
    c.broadcast(d, p - 1)->wait();
    EXPECT_EQ(be_->toHost(d).data()[7], float((p - 1) * 1000 + 7)) << "broadcast";

    Tensor in = be_->fromHost(pattern(16, r)), out = be_->empty(Shape{p, 16});
    c.allGather(in, out)->wait();
    Tensor g = be_->toHost(out);
    for (int q = 0; q < p; ++q) EXPECT_EQ(g.data()[q * 16 + 3], float(q * 1000 + 3)) << "allGather from " << q;

    // Ring: send to the right, receive from the left, both posted before either wait.
    Tensor s = be_->fromHost(pattern(n, r)), rcv = be_->zeros(Shape{n});
    const int right = (r + 1) % p, left = (r + p - 1) % p;
    std::vector<WorkPtr> works;
    if (r % 2 == 0) {
      works.push_back(c.send(s, right, 5));
      works.push_back(c.recv(rcv, left, 5));
    } else {
      works.push_back(c.recv(rcv, left, 5));
      works.push_back(c.send(s, right, 5));
    }
    waitAll(works);
    EXPECT_EQ(be_->toHost(rcv).data()[11], float(left * 1000 + 11)) << "send/recv ring";

    // Host tensors still go through MPI.
    Tensor ht = pattern(8, r);
    c.allReduce(ht, ReduceOp::kMin)->wait();
    EXPECT_EQ(ht.data()[2], 2.f) << "host tensor allReduce";
  }
  int device_ = 0;
  std::unique_ptr<Backend> be_;
};

TEST_F(DeviceComm, HostStagedMatchesHostValues) {
  CommPtr c = make(DeviceCommKind::kHostStaged);
  EXPECT_EQ(deviceCommKind(*c), DeviceCommKind::kHostStaged);
  exercise(*c);
}

TEST_F(DeviceComm, AutomaticKindAndNccl) {
  // Every rank sees the same devices under one mpirun on one host: ranks share a GPU exactly
  // when there are more local ranks than devices.
  const bool shared = runtime().localSize() > cudaDeviceCount();
  CommPtr host = runtime().world().split(0, runtime().rank(), "devauto");
  CommPtr c = makeDeviceComm(std::move(host), *be_, /*ncclP2p=*/true);
  EXPECT_EQ(deviceCommKind(*c), shared ? DeviceCommKind::kHostStaged : DeviceCommKind::kNccl);
  exercise(*c);  // NCCL when each rank has its own GPU, else the staged fallback again
}

// NCCL start-up is watched like every other wait: the last rank joins the id broadcast but never
// starts NCCL; the others give up after the timeout with a CommError naming their rank.
TEST_F(DeviceComm, NcclStartupTimesOutWhenARankNeverJoins) {
  CommPtr host = runtime().world().split(0, runtime().rank(), "devlate");
  host->setOptions(CommOptions{.timeoutSeconds = 3});
  const int r = host->rank(), p = host->size();
  if (r == p - 1) {
    std::string id;
    host->broadcastString(id, 0);  // the bootstrap's only collective, then nothing
  } else {
    const auto start = std::chrono::steady_clock::now();
    try {
      makeDeviceComm(std::move(host), *be_, /*ncclP2p=*/true, DeviceCommKind::kNccl);
      ADD_FAILURE() << "NCCL start-up finished without rank " << p - 1;
    } catch (const CommError& e) {
      EXPECT_NE(std::string(e.what()).find("rank " + std::to_string(r) + " of " + std::to_string(p)),
                std::string::npos) << e.what();
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(secs, 30.0) << "bounded by the 3 s watchdog";
  }
  runtime().world().barrier();
}

}  // namespace
}  // namespace sw
