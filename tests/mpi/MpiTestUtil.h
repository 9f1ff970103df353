// Shared by the MPI test binaries: the job's MPI runtime (initialised once, finalised by
// MpiMain.cpp) and a scratch directory every rank agrees on.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "comm/Mpi.h"

namespace sw::mpitest {

inline MpiRuntime& runtime() {
  static MpiRuntime rt(nullptr, nullptr);
  return rt;
}

// A fresh directory shared by all ranks (rank 0 picks the name).
inline std::string sharedDir(const std::string& name) {
  Communicator& w = runtime().world();
  std::string d = w.rank() == 0 ? ::testing::TempDir() + "/swmpi_" + name + "_" + std::to_string(::getpid()) : "";
  w.broadcastString(d, 0);
  if (w.rank() == 0) std::filesystem::remove_all(d);
  w.barrier();
  return d;
}

}  // namespace sw::mpitest
