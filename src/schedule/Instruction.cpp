// Printing of instructions.
#include "schedule/Instruction.h"

#include <sstream>

namespace sw {

const char* opName(Op op) {
  switch (op) {
    case Op::kLoad: return "Load";
    case Op::kForward: return "Forward";
    case Op::kBackward: return "Backward";
    case Op::kSendAct: return "SendAct";
    case Op::kRecvAct: return "RecvAct";
    case Op::kSendGrad: return "SendGrad";
    case Op::kRecvGrad: return "RecvGrad";
    case Op::kReduceGrads: return "ReduceGrads";
    case Op::kOptimizerStep: return "OptimizerStep";
    case Op::kStashWeights: return "StashWeights";
    case Op::kPredictWeights: return "PredictWeights";
    case Op::kLocalLoss: return "LocalLoss";
    case Op::kInputGrad: return "InputGrad";
    case Op::kTrainFeedback: return "TrainFeedback";
    case Op::kSyncFeedback: return "SyncFeedback";
    case Op::kComputeTargets: return "ComputeTargets";
    case Op::kElasticSync: return "ElasticSync";
  }
  return "?";
}

std::string shortStr(const Instr& in) {
  switch (in.op) {
    case Op::kForward: return "F" + std::to_string(in.mb);
    case Op::kBackward: return "B" + std::to_string(in.mb);
    case Op::kLocalLoss: return "L" + std::to_string(in.mb);
    case Op::kInputGrad: return "i" + std::to_string(in.mb);
    case Op::kReduceGrads: return "AR";
    case Op::kOptimizerStep: return "U";
    case Op::kTrainFeedback: return "G" + std::to_string(in.block);
    case Op::kSyncFeedback: return "S" + std::to_string(in.block);
    case Op::kComputeTargets: return "T";
    default: return opName(in.op);
  }
}

std::string str(const Instr& in) {
  std::ostringstream os;
  os << opName(in.op);
  if (in.mb >= 0) os << " mb=" << in.mb;
  if (in.slot >= 0) os << " slot=" << in.slot;
  if (in.peer >= 0) os << " peer=" << in.peer;
  if (in.version >= 0) os << " version=" << in.version;
  if (in.tag >= 0) os << " tag=" << in.tag;
  if (in.loss >= 0) os << " loss=" << in.loss;
  if (in.block >= 0) os << " block=" << in.block;
  return os.str();
}

}  // namespace sw
