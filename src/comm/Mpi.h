// MPI process runtime and the MPI implementation of Communicator. MpiRuntime initialises MPI
// once per process (a singleton run without mpirun is a world of one) and finalises it; every
// MpiCommunicator must be destroyed before it. Host tensors only: Debian's Open MPI is not
// CUDA-aware, so device tensors go through NCCL or are staged by the caller.
#pragma once
#include <string>

#include "comm/Communicator.h"

namespace sw {

class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
  // The world communicator (owned by the runtime).
  Communicator& world() { return *world_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Rank among the processes of this host (device selection), and the host's name.
  int localRank() const { return localRank_; }
  int localSize() const { return localSize_; }
  static std::string hostName();
  static bool initialized();

 private:
  CommPtr world_;
  int rank_ = 0, size_ = 1, localRank_ = 0, localSize_ = 1;
  bool owns_ = false;
};

}  // namespace sw
