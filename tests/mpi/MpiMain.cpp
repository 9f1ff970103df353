// GoogleTest main for tests under mpirun. Every rank runs every test; rank 0 keeps the normal
// printer, other ranks print only their failed assertions (tagged with the rank), a per-test
// gather names the ranks where a test failed, and the exit status is the maximum over ranks,
// so mpirun and CTest fail when any rank fails. Tests with collectives use EXPECT_*, never
// ASSERT_* (an early return on one rank would leave the others in the collective).
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <vector>

namespace {

class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, r.file_name() ? r.file_name() : "?",
                   r.line_number(), r.summary());
  }

 private:
  int rank_;
};

class FailureGather : public testing::EmptyTestEventListener {
 public:
  FailureGather(int rank, int size) : rank_(rank), size_(size) {}
  void OnTestEnd(const testing::TestInfo& info) override {
    int failed = info.result()->Failed() ? 1 : 0;
    std::vector<int> all(size_t(size_), 0);
    MPI_Gather(&failed, 1, MPI_INT, all.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank_ != 0) return;
    for (int r = 0; r < size_; ++r)
      if (all[size_t(r)])
        std::printf("[  MPI     ] %s.%s FAILED on rank %d\n", info.test_suite_name(), info.name(), r);
  }

 private:
  int rank_, size_;
};

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  testing::InitGoogleTest(&argc, argv);
  if (rank != 0 && GTEST_FLAG_GET(list_tests)) std::freopen("/dev/null", "w", stdout);
  auto& listeners = testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    delete listeners.Release(listeners.default_xml_generator());
    listeners.Append(new RankFailurePrinter(rank));
  }
  listeners.Append(new FailureGather(rank, size));
  int rc = RUN_ALL_TESTS();
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
