// Validator: runs every rank's Program together in a discrete-event simulation (no MPI, no
// device) and proves the schedule sound: each send meets exactly one receive (same channel,
// same micro-batch), every slot is written before it is read and never holds two live
// micro-batches, weight versions exist when used, collectives are reached by every member, and
// nothing deadlocks. With unit costs per forward/backward it also yields each rank's timeline
// and idle fraction (what `stagewise schedule` prints).
#pragma once
#include <string>
#include <vector>

#include "schedule/Schedule.h"

namespace sw {

// One stage's costs per micro-batch (any time unit; the planner uses seconds) and the sizes of
// what it communicates.
struct StageCosts {
  double forward = 1.0, backward = 2.0;  // per micro-batch (last stage: with the loss)
  double update = 0.0;                   // optimizer step
  double aux = 0.0;                      // interlocking: auxiliary head forward + backward
  double inputGrad = 1.0;                // interlocking: input-only backward (dgrad only)
  double actBytes = 0;                   // output activation of one micro-batch (SendAct)
  double gradBytes = 0;                  // input gradient of one micro-batch (SendGrad)
  double paramBytes = 0;                 // what ReduceGrads / ElasticSync reduce
};

// Message and collective times between ranks (rank = replica * stages + stage). Without one,
// communication is free and instantaneous.
class CommModel {
 public:
  virtual ~CommModel() = default;
  virtual double message(int src, int dst, double bytes) const = 0;
  virtual double allReduce(const std::vector<int>& ranks, double bytes) const = 0;
  virtual double broadcast(const std::vector<int>& ranks, int root, double bytes) const = 0;
};

struct SimCosts {
  double forward = 1.0, backward = 2.0;  // per micro-batch and stage
  double update = 0.0;                   // optimizer step
  double aux = 0.0;                      // interlocking: auxiliary head forward + backward
  double inputGrad = 1.0;                // interlocking: input-only backward (dgrad only)
  double feedback = 1.0;                 // DTP: one feedback block's L-DRL iterations
  // When not empty: per stage, replacing the scalars above (and feedback per block G_i, index
  // i, with the bytes its SyncFeedback broadcasts).
  std::vector<StageCosts> stage;
  std::vector<double> feedbackBlock, feedbackBytes;
  const CommModel* comm = nullptr;
};

struct TimelineEvent {
  int rank;
  Instr in;
  double start, end;
};

struct SimResult {
  bool ok = true;
  std::string error;                 // first violation, naming the rank and instruction
  double makespan = 0;
  std::vector<double> busy;          // per rank
  std::vector<double> idleFraction;  // per rank: 1 - busy / makespan
  std::vector<TimelineEvent> events; // forward/backward/update spans
  int messages = 0;                  // matched send/receive pairs
  // Per rank: most slots holding a micro-batch at once (activation memory), most stashed
  // weight versions, and the largest staleness: optimizer steps of the stage between a
  // micro-batch's forward and its backward (0 for flushed pipelines).
  std::vector<int> peakSlots, peakStash, staleness;
};

// Simulates stages x replicas ranks (rank = replica * stages + stage).
SimResult simulate(const Schedule& sched, const ScheduleSpec& spec, const SimCosts& costs = {});
SimResult simulatePrograms(const std::vector<Program>& programs, const ScheduleSpec& spec,
                           const SimCosts& costs = {});
// Text timeline: one row per rank, one column per time unit.
std::string renderTimeline(const SimResult& r, const ScheduleSpec& spec);

}  // namespace sw
