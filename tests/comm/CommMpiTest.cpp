// MpiCommunicator under mpirun with 2, 3 and 4 ranks: point to point (ring and pairs, large
// messages), every collective and reduce op, sub-communicators from split, the control-plane
// helpers, and the watchdog turning a missing peer into a CommError instead of a hang.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "comm/Mpi.h"
#include "comm/Topology.h"
#include "core/Error.h"

namespace sw {
namespace {

MpiRuntime& runtime() {
  static MpiRuntime rt(nullptr, nullptr);  // MPI is already initialised by the test main
  return rt;
}

Tensor iota(int64_t n, float base) {
  Tensor t = Tensor::empty(Shape({n}));
  for (int64_t i = 0; i < n; ++i) t.data()[i] = base + float(i);
  return t;
}

TEST(Comm, RingSendRecv) {
  Communicator& w = runtime().world();
  const int r = w.rank(), n = w.size();
  if (n < 2) GTEST_SKIP() << "needs 2 ranks";
  // 1 MiB+ messages exercise the rendezvous protocol, not only eager sends.
  const int64_t len = (1 << 18) + 3;
  Tensor out = iota(len, float(r) * 1000.f), in = Tensor::empty(Shape({len}));
  auto rw = w.recv(in, (r + n - 1) % n, 7);  // receive posted before the send: no ordering trap
  auto sw_ = w.send(out, (r + 1) % n, 7);
  rw->wait();
  sw_->wait();
  const float src = float((r + n - 1) % n) * 1000.f;
  EXPECT_EQ(in.data()[0], src);
  EXPECT_EQ(in.data()[len - 1], src + float(len - 1));
}

// A failing rank unwinds with works it never waited for: dropping one (a staged receive whose
// completion would copy to the device) returns at once, not after the watchdog timeout, and
// does not run the completion. The message arrives later and lands in the kept buffer.
TEST(Comm, DroppingAnUnwaitedWorkNeverBlocks) {
  Communicator& w = runtime().world();
  if (w.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  CommPtr c = w.split(0, w.rank(), "drop");
  c->setOptions(CommOptions{.timeoutSeconds = 20});
  bool completed = false;
  if (c->rank() == 0) {
    Tensor in = Tensor::empty(Shape({64}));
    const auto t0 = std::chrono::steady_clock::now();
    {
      WorkPtr work = withCompletion(c->recv(in, 1, 99), [&completed] { completed = true; });
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(secs, 1.0) << "dropping an unwaited work blocked";
    EXPECT_FALSE(completed) << "the completion of a dropped work ran";
  }
  c->barrier();
  if (c->rank() == 1) c->send(iota(64, 1.f), 0, 99)->wait();
  c->barrier();
}

TEST(Comm, TagsKeepChannelsApart) {
  Communicator& w = runtime().world();
  if (w.size() < 2 || w.rank() > 1) GTEST_SKIP() << "ranks 0 and 1 only";
  const int peer = 1 - w.rank();
  Tensor a = iota(4, 1.f), b = iota(4, 100.f), ra = Tensor::empty(Shape({4})), rb = Tensor::empty(Shape({4}));
  // Sent in one order, received in the other: tags pair them correctly.
  auto s1 = w.send(a, peer, 1), s2 = w.send(b, peer, 2);
  auto r2 = w.recv(rb, peer, 2), r1 = w.recv(ra, peer, 1);
  r1->wait();
  r2->wait();
  s1->wait();
  s2->wait();
  EXPECT_EQ(ra.data()[3], 4.f);
  EXPECT_EQ(rb.data()[0], 100.f);
}

TEST(Comm, AllReduceOps) {
  Communicator& w = runtime().world();
  const int r = w.rank(), n = w.size();
  Tensor s = iota(1000, float(r)), a = iota(1000, float(r)), mx = iota(1000, float(r)), mn = iota(1000, float(r));
  auto w1 = w.allReduce(s, ReduceOp::kSum);
  auto w2 = w.allReduce(a, ReduceOp::kAvg);
  auto w3 = w.allReduce(mx, ReduceOp::kMax);
  auto w4 = w.allReduce(mn, ReduceOp::kMin);
  w1->wait();
  w2->wait();
  w3->wait();
  w4->wait();
  const float rankSum = float(n * (n - 1)) / 2.f;
  for (int i : {0, 1, 999}) {
    EXPECT_FLOAT_EQ(s.data()[i], rankSum + float(n * i));
    EXPECT_FLOAT_EQ(a.data()[i], rankSum / float(n) + float(i));
    EXPECT_FLOAT_EQ(mx.data()[i], float(n - 1 + i));
    EXPECT_FLOAT_EQ(mn.data()[i], float(i));
  }
}

TEST(Comm, BroadcastAndAllGather) {
  Communicator& w = runtime().world();
  const int r = w.rank(), n = w.size();
  const int root = n - 1;
  Tensor b = r == root ? iota(17, 5.f) : Tensor::zeros(Shape({17}));
  w.broadcast(b, root)->wait();
  EXPECT_EQ(b.data()[16], 21.f);
  Tensor mine = Tensor::full(Shape({3}), float(r)), all = Tensor::empty(Shape({n, 3}));
  w.allGather(mine, all)->wait();
  for (int k = 0; k < n; ++k) EXPECT_EQ(all.data()[k * 3 + 2], float(k));
  Tensor wrong = Tensor::empty(Shape({2}));
  EXPECT_THROW(w.allGather(mine, wrong), ShapeError);  // checked locally, before any traffic
}

TEST(Comm, SplitIntoPipeAndDataGroups) {
  Communicator& w = runtime().world();
  const int n = w.size();
  const int stages = n % 2 == 0 ? 2 : 1;
  Topology topo(n, stages);
  RankCoord c = topo.coord(w.rank());
  auto pipe = w.split(c.replica, c.stage, "pipe");
  auto data = w.split(c.stage, c.replica, "data");
  EXPECT_EQ(pipe->size(), stages);
  EXPECT_EQ(pipe->rank(), c.stage);
  EXPECT_EQ(data->size(), topo.replicas());
  EXPECT_EQ(data->rank(), c.replica);
  // Sum of world ranks within each data group: replicas of stage s are ranks s, s+S, ...
  Tensor t = Tensor::full(Shape({1}), float(w.rank()));
  data->allReduce(t, ReduceOp::kSum)->wait();
  float expect = 0;
  for (int rep = 0; rep < topo.replicas(); ++rep) expect += float(topo.rankOf(rep, c.stage));
  EXPECT_EQ(t.item(), expect);
  w.barrier();
}

TEST(Comm, ControlValuesAndStrings) {
  Communicator& w = runtime().world();
  std::vector<double> v{1.0, double(w.rank())};
  w.allReduceValues(v, ReduceOp::kSum);
  EXPECT_EQ(v[0], double(w.size()));
  std::string s = w.rank() == 0 ? std::string("[train]\nalgo = dp\n") : std::string();
  w.broadcastString(s, 0);
  EXPECT_EQ(s, "[train]\nalgo = dp\n");
}

TEST(Comm, WatchdogTimesOutOnASilentPeer) {
  Communicator& w = runtime().world();
  if (w.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  auto sub = w.split(0, w.rank(), "watchdog");
  Tensor t = Tensor::zeros(Shape({4}));
  WorkPtr pending;
  if (sub->rank() == 1) {
    sub->setOptions({.timeoutSeconds = 0.5});  // work posted now carries the short deadline
    pending = sub->recv(t, 0, 99);             // rank 0 stays silent for now
    EXPECT_THROW(pending->wait(), CommError);
    sub->setOptions({.timeoutSeconds = 60});
  }
  sub->barrier();
  if (sub->rank() == 0) sub->send(Tensor::full(Shape({4}), 3.f), 1, 99)->wait();
  if (pending) {
    pending->wait();  // a timed-out wait can be retried once the peer answers (deadline restarts)
    EXPECT_EQ(t.data()[0], 3.f);
  }
  sub->barrier();
}

TEST(Comm, InvalidPeerIsAnError) {
  Communicator& w = runtime().world();
  Tensor t = Tensor::zeros(Shape({1}));
  EXPECT_THROW(w.send(t, w.size(), 0), CommError);
  EXPECT_THROW(w.recv(t, w.rank(), 0), CommError);
}

}  // namespace
}  // namespace sw
