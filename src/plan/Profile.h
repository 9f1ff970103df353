// Profile: what the planner (plan/Planner.h) needs to know about one model on one machine, all
// measured: per model block and micro-batch size, the forward, backward, input-only backward,
// auxiliary-head, inverse (reversible blocks) and optimizer-step times, the bytes it sends and
// holds; the loss; DTP's feedback training per block; and the machine's point-to-point and
// allreduce times by message size. `stagewise profile` measures it (every rank at once, so the
// figures include the contention of a real run on the same host) and writes it as JSON.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "comm/Communicator.h"
#include "config/TrainConfig.h"

namespace sw {

// A quantity measured at each of Profile::rows (seconds or bytes), read at any row count by
// piecewise-linear interpolation (linear extrapolation through the nearest two points).
using RowSeries = std::vector<double>;

struct BlockProfile {
  std::string name;
  double paramBytes = 0;           // parameters (the gradients and optimizer state scale with it)
  double inBytesPerRow = 0;        // this block's input per sample (the previous block's output)
  double outBytesPerRow = 0;       // output per sample (what SendAct sends at a cut after it)
  RowSeries forward, backward;     // backward: with the input gradient (block 0: without)
  RowSeries inputGrad;             // input-only backward (interlocking), empty for block 0
  RowSeries heldBytes;             // saved for its backward, its input and output excluded
  bool savesInput = false, savesOutput = false;
  RowSeries aux;                   // aux head on its output: forward + loss + backward with dx
  double auxParamBytes = 0;
  RowSeries inverse;               // rebuild the input from the output (reversible blocks only)
  double update = 0;               // optimizer step over its parameters (seconds)
  double optStateBytes = 0;        // optimizer state of its parameters
  RowSeries feedback;              // DTP: L-DRL iterations of its feedback block G_i (i >= 1)
  double feedbackBytes = 0;        // the weight a SyncFeedback broadcasts
};

struct CommPoint {
  double bytes = 0, seconds = 0;
};

struct CommProfile {
  int ranks = 0;                       // 0 = not measured (profiled on one rank)
  std::string kind;                    // "mpi" or the device communicator ("nccl", "staged")
  std::vector<CommPoint> p2p;          // one-way time rank 0 -> 1 (half a ping-pong)
  std::vector<CommPoint> allReduce;    // over all `ranks`
  double latency = 0, bandwidth = 0;   // fit of p2p: latency + bytes / bandwidth (bytes/s)
};

struct Profile {
  std::string origin;                // the file it was read from
  std::string model, device, host, version = "stagewise-profile/1";
  std::string config;                // the resolved config (INI text) it was measured with
  int threads = 0, ranks = 1;        // threads per rank; ranks measuring at once
  std::vector<int64_t> sampleShape;
  int64_t classes = 0, batchSize = 0, trainRows = 0;
  std::vector<int64_t> rows;         // micro-batch sizes measured, increasing
  std::vector<BlockProfile> blocks;
  RowSeries loss;                    // softmax cross-entropy forward + backward on the logits
  RowSeries load;                    // a micro-batch from the loader (with augmentation)
  // A real backprop step through the executor minus its measured parts: seconds per
  // mini-batch and per micro-batch (what the per-block figures miss; the planner adds it back).
  double overheadPerBatch = 0, overheadPerMicrobatch = 0;
  CommProfile comm;

  double at(const RowSeries& s, double n) const;
};

struct ProfileOptions {
  std::vector<int64_t> rows;  // empty: the batch halved down to 1/64 of it
  int repeats = 5;            // timed repeats per figure (median), after one warm-up
  bool comm = true;           // measure p2p / allreduce when there are >= 2 ranks
};

// Measures `cfg`'s model and data on every rank of `world` at once; every rank returns the
// rank-averaged profile. Throws ConfigError/DataError on bad input as training would.
Profile measureProfile(const TrainConfig& cfg, Communicator& world, const ProfileOptions& o);

void writeProfile(const Profile& p, const std::string& path);
// Throws InputError naming the file and the field when it is not a stagewise profile.
Profile readProfile(const std::string& path);

}  // namespace sw
