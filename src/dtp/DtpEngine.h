// DtpEngine: one rank's DTP state (forward net F, feedback net G, the forward optimizer and the
// optimizers of the feedback blocks this rank owns) and the interpreter of its DtpProgram for one
// training step. The same engine runs sequential DTP (one rank, every block owned) and
// layer-parallel DTP (blocks spread over ranks, weights broadcast from their owners).
#pragma once
#include <memory>
#include <vector>

#include "comm/Communicator.h"
#include "data/Loader.h"
#include "dtp/Dtp.h"
#include "dtp/DtpProgram.h"

namespace sw::dtp {

struct StepStats {
  double ce = 0;                 // mean cross-entropy of the logits before the update
  int64_t correct = 0, seen = 0;
  std::vector<double> localLoss; // L_0..L_L of the batch
  std::vector<double> drlLoss;   // mean L-DRL loss over the step's iterations, owned blocks (else 0)
  // Seconds: forward pass, feedback training, waiting in the weight broadcasts, target
  // computation + local losses + forward optimizer step.
  double forward = 0, feedback = 0, sync = 0, update = 0;
  BpComparison bp;               // per block: DTP gradient vs beta x BP gradient, when measured
};

class DtpEngine {
 public:
  // `owner` from assignLayers(); `world` is the job (a self communicator for one rank).
  DtpEngine(Model& f, FeedbackNet& g, Hyper hp, const OptimConfig& forwardOpt, Communicator& world,
            std::vector<int> owner);
  // One training step on `batch` (host tensors). `step` keys the noise; `lr` is the forward lr.
  StepStats step(const Batch& batch, int64_t step, float lr);

  Optimizer& forwardOptimizer() { return *fopt_; }
  // The optimizer of G_i, or nullptr when another rank owns G_i.
  Optimizer* feedbackOptimizer(int layer) { return gopt_.at(size_t(layer)).get(); }
  const std::vector<int>& owner() const { return owner_; }
  const DtpProgram& program() const { return program_; }
  const std::vector<ForwardBlockInfo>& info() const { return info_; }
  const Hyper& hyper() const { return hp_; }
  // The communicator the weight broadcasts use: by default the world; a device backend's trainer
  // sets the device-aware duplicate of it (schedule/TrainingComm.h). Same ranks, same order.
  void setTensorCommunicator(Communicator& c) { tensors_ = &c; }
  // Measure compareWithBackprop() on every `every`-th step (0: never). Diagnostic only: costs one
  // extra forward and backward pass on the measured steps and does not change training.
  void setBpAngleEvery(int64_t every) { bpAngleEvery_ = every; }

  // FNV-1a hash over the bits of every F and G parameter (bit-identical replicas hash equal).
  uint64_t weightsHash();
  // Compares weightsHash() over the world; when ranks differ (nondeterministic kernels, pitfall 6),
  // copies rank 0's F (with its momentum) and G weights to everybody and returns true.
  bool checkAndResync();

 private:
  Model& f_;
  FeedbackNet& g_;
  Hyper hp_;
  Communicator& world_;
  Communicator* tensors_ = &world_;
  std::vector<int> owner_;
  std::vector<ForwardBlockInfo> info_;
  DtpProgram program_;
  std::unique_ptr<Optimizer> fopt_;
  std::vector<std::unique_ptr<Optimizer>> gopt_;
  ForwardPass fp_;
  int64_t bpAngleEvery_ = 0;
};

}  // namespace sw::dtp
