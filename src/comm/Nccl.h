// The NCCL communicator (built with SW_WITH_NCCL; see DESIGN.md B, comm/). It spans the same
// ranks as a host (MPI) communicator and moves tensors that live on the GPU; host tensors go
// through the host communicator, so one communicator serves both. Bootstrapped by broadcasting
// the ncclUniqueId over the host communicator; created non-blocking (NCCL 2.14+) and its start-up
// polled under the watchdog timeout, so a rank that never joins ends in a CommError naming the
// rank. Collectives and send/recv run on a communication stream that waits for the compute
// stream through an event; Work::wait() polls the completion event and ncclCommGetAsyncError,
// and on an error or the watchdog timeout aborts the communicator (ncclCommAbort) and throws
// CommError; after it, the compute stream waits for the completion event, so later kernels see
// the result. NCCL has no tags: point-to-point pairs between two ranks must be issued in the same
// order on both sides. NCCL refuses two ranks on one GPU: comm/DeviceComm.h then stages through
// MPI instead (ranksShareGpu). The header is CUDA-free: the compute stream is passed as
// Backend::nativeStream()'s handle.
#pragma once
#include "comm/Communicator.h"

namespace sw {

// Collective over `host`: every rank passes its own GPU and compute stream.
CommPtr makeNcclCommunicator(CommPtr host, int device, void* computeStream);
// Whether two ranks of `host` drive the same GPU (host name + PCI bus id exchanged). Collective;
// every rank gets the same answer.
bool ranksShareGpu(Communicator& host, int device);
bool isNcclCommunicator(const Communicator& c);

}  // namespace sw
