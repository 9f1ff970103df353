// DeviceComm: the communicator the trainer hands tensors to when its backend keeps tensors on a
// device (DESIGN.md B, comm/). Host tensors always go straight to the MPI communicator
// underneath, so the CPU path gets no wrapper and no copies. Device tensors go through NCCL when
// the device is CUDA and the build has NCCL (comm/Nccl.h falls back to host-staged MPI by itself
// when ranks share a GPU); otherwise they are staged through host memory with the copier's
// copies around the MPI operation (Debian's Open MPI is not CUDA-aware). Only a TensorCopier is
// needed, not the backend: comm depends on core alone.
#pragma once
#include "comm/Communicator.h"
#include "core/TensorCopier.h"

namespace sw {

// Wraps `host` for tensors on `be`'s device (returns `host` itself for the CPU backend).
// Collective over `host` (NCCL bootstraps over it). Splits of the result are wrapped alike.
// ncclP2p: point-to-point over NCCL too (else staged through MPI; see DeviceComm.cpp).
CommPtr makeDeviceComm(CommPtr host, TensorCopier& be, bool ncclP2p = false);

// The trainer's entry: a wrapped duplicate of `world` when the backend is on a device and the job
// has more than one rank, else nullptr (use `world` itself). Collective; every rank must run the
// same kind of backend (runtime.device = auto on a job where only some hosts have a GPU is a
// ConfigError on every rank).
CommPtr makeDeviceWorld(Communicator& world, TensorCopier& be, bool ncclP2p = false);

}  // namespace sw
