// DeviceComm: the one device communicator, what the trainer hands tensors to when its backend
// keeps tensors on a device (DESIGN.md B, comm/). Host tensors always go straight to the MPI
// communicator underneath, so the CPU path gets no wrapper and no copies. Device tensors:
//  - NCCL (comm/Nccl.h) when the device is CUDA, the build has NCCL and no two ranks of the group
//    share a GPU: collectives always, point-to-point too with ncclP2p;
//  - otherwise staged through host memory with the copier's copies around the MPI operation
//    (Debian's Open MPI is not CUDA-aware): the single-node rank simulation on one GPU, any
//    non-CUDA device backend, and point-to-point without ncclP2p.
// Only a TensorCopier is needed, not the backend: comm depends on core alone.
#pragma once
#include <optional>

#include "comm/Communicator.h"
#include "core/TensorCopier.h"

namespace sw {

enum class DeviceCommKind { kNccl, kHostStaged };

// Wraps `host` for tensors on `be`'s device (returns `host` itself for the CPU backend).
// Collective over `host` (NCCL bootstraps over it). Splits of the result are wrapped alike.
// ncclP2p: point-to-point over NCCL too (else staged through MPI; see DeviceComm.cpp).
// force: the kind regardless of whether ranks share a GPU (tests; kNccl still fails if NCCL itself
// refuses, or without NCCL in the build).
CommPtr makeDeviceComm(CommPtr host, TensorCopier& be, bool ncclP2p = false,
                       std::optional<DeviceCommKind> force = std::nullopt);
// Which kind a communicator made above is (kNccl: its collectives run on NCCL); CommError for
// any other communicator.
DeviceCommKind deviceCommKind(const Communicator& c);

// The trainer's entry: a wrapped duplicate of `world` when the backend is on a device and the job
// has more than one rank, else nullptr (use `world` itself). Collective; every rank must run the
// same kind of backend (runtime.device = auto on a job where only some hosts have a GPU is a
// ConfigError on every rank).
CommPtr makeDeviceWorld(Communicator& world, TensorCopier& be, bool ncclP2p = false);

}  // namespace sw
