// Device communicators (built with SW_WITH_NCCL; see DESIGN.md B, comm/). A device communicator
// spans the same ranks as a host (MPI) communicator and moves tensors that live on the GPU:
//  - NCCL when every rank of the group drives its own GPU: bootstrapped by broadcasting the
//    ncclUniqueId over the host communicator; the communicator is created non-blocking (NCCL
//    2.14+) and its start-up polled under the watchdog timeout, so a rank that never joins ends
//    in a CommError naming the rank. Collectives and send/recv run on a communication stream
//    that waits for the compute stream through an event; Work::wait() polls the completion
//    event and ncclCommGetAsyncError, and on an error or the watchdog timeout aborts the
//    communicator (ncclCommAbort) and throws CommError; after it, the compute stream waits for
//    the completion event, so later kernels see the result.
//  - host-staged MPI when two ranks of the group share a GPU (NCCL refuses that: the single-node
//    rank simulation on a one-GPU machine): device -> host copy, the MPI operation, host ->
//    device copy on the compute stream.
// Host tensors always go through the host communicator, so one communicator serves both kinds.
// NCCL has no tags: point-to-point pairs between two ranks must be issued in the same order on
// both sides (our schedules pair each send with its receive in one Step).
// The header is CUDA-free: the compute stream is passed as Backend::nativeStream()'s handle.
#pragma once
#include "comm/Communicator.h"

namespace sw {

enum class DeviceCommKind { kNccl, kHostStaged };

// Collective over `host`: every rank passes its own GPU and compute stream. NCCL unless two
// ranks of the group share a GPU (detected by exchanging host name + PCI bus id), else staged.
CommPtr makeDeviceCommunicator(CommPtr host, int device, void* computeStream);
// The same with the kind forced (tests; kNccl still fails if NCCL itself refuses).
CommPtr makeDeviceCommunicator(CommPtr host, int device, void* computeStream,
                               DeviceCommKind force);
// The kind of a communicator made above; throws CommError for any other communicator.
DeviceCommKind deviceCommKind(const Communicator& c);

}  // namespace sw
