// Instruction: one flat, printable unit of a rank's program. Every algorithm is a per-rank
// Program of Steps of Instrs, run by one Executor (schedule/Executor.h).
//
// Index vocabulary, defined once here and used everywhere:
//   mb       micro-batch index within the round (a round = the work between two drains; for the
//            flushed schedules one optimizer step, for pipedream `pipedream.drain_every` steps)
//   slot     activation slot of this rank holding one in-flight micro-batch (Ctx, input, grads)
//   stage    pipeline position; `peer` of a send/recv is the peer's stage (pipe communicator)
//   replica  data-parallel copy of the pipeline; ReduceGrads runs over the stage's replicas
//   version  weight version = optimizer steps this stage has applied in the round; -1 = current,
//            kVersionPredicted = SpecTrain's predicted weights; on OptimizerStep, `mb` > 0 is the
//            number of backward passes the step accumulated (delayed-gradient pipelines)
//   tag      message kind (kTagAct / kTagGrad); MPI keeps per-(peer, tag) order, so sends and
//            receives on a channel pair up first to first (the Validator checks the mb matches)
//   loss     interlocking backprop: the component whose loss a gradient (RecvGrad, Backward,
//            InputGrad, SendGrad) belongs to; -1 = the single end-to-end gradient
//   block    DTP: the feedback block G_i an instruction trains or broadcasts
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sw {

enum class Op : uint8_t {
  kLoad,           // fetch micro-batch mb's data (stage 0: inputs; last stage: labels) into slot
  kForward,        // forward of this stage's blocks on slot (last stage: + loss)
  kBackward,       // backward on slot (last stage: from the loss); accumulates parameter grads
  kSendAct,        // send slot's output activation to stage `peer`
  kRecvAct,        // receive slot's input activation from stage `peer`
  kSendGrad,       // send slot's input gradient to stage `peer`
  kRecvGrad,       // receive slot's output gradient from stage `peer`
  kReduceGrads,    // average parameter gradients over the stage's replicas
  kOptimizerStep,  // apply accumulated gradients; weight version += 1
  kStashWeights,   // keep a copy of the current weights as `version` (PipeDream)
  kPredictWeights, // SpecTrain: weights predicted `version` steps ahead (tag 1: along m B + D,
                   // for a forward; tag 0: along m B, for a backward); the next Forward or
                   // Backward with version == kVersionPredicted uses them
  kLocalLoss,      // interlocking/local backprop: forward + backward of the stage's auxiliary head
                   // on its (detached) output: the head's gradients and dL_stage/d(output)
  kInputGrad,      // interlocking: input-only backward (no parameter gradients) of loss `loss`
  kTrainFeedback,  // DTP: K_i L-DRL iterations of feedback block `block` (algo/dtp)
  kSyncFeedback,   // DTP: broadcast of feedback block `block`'s weight from replica `peer`, its owner
  kComputeTargets, // DTP: first target and difference-corrected targets t_L .. t_0; the Backward
                   // that follows backpropagates the layer-local losses into each block only
  kElasticSync,    // Parle: coupling to the replica average
};
constexpr size_t kNumOps = size_t(Op::kElasticSync) + 1;

constexpr int kTagAct = 1;
constexpr int kTagGrad = 2;
// PETRA: after its backward a stage sends the previous stage its input as it knows it (stored or
// rebuilt by inverting reversible blocks) with SendGrad/RecvGrad on this tag, ahead of the
// gradient; the previous stage inverts its own reversible blocks from it.
constexpr int kTagRecon = 3;
// Interlocking: stage c sends c-1 the gradient of loss j w.r.t. its input on tag
// kTagLossGrad + (j - c), so each of the (at most d) gradients of a micro-batch has its channel.
constexpr int kTagLossGrad = 16;
// Instr.version of a Forward/Backward that runs on the weights of the last PredictWeights.
constexpr int kVersionPredicted = -2;

struct Instr {
  Op op;
  int mb = -1;
  int slot = -1;
  int peer = -1;
  int version = -1;
  int tag = -1;
  int loss = -1;
  int block = -1;
  bool operator==(const Instr&) const = default;
};

// A Step groups one unit of compute with its communication. The Executor posts sends and
// receives without blocking and waits for a receive only when its data is consumed, so steps
// are units of the timeline, not barriers.
using Step = std::vector<Instr>;
using Program = std::vector<Step>;

const char* opName(Op op);
// "F3" / "B3" / "sA3>1" ... short form for timelines and errors.
std::string shortStr(const Instr& in);
std::string str(const Instr& in);

}  // namespace sw
