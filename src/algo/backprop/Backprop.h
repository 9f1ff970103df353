// Backprop family: plain backprop (bp), data parallel (dp) and the synchronous pipelines (mp,
// gpipe, 1f1b). Every step is exact backprop on the mini-batch; they differ only in where the
// blocks live and in which order micro-batches flow. Schedules: one file each in this folder.
#pragma once
#include <memory>
#include <string>

#include "algo/Algorithm.h"

namespace sw {

// The registry's names for the members of the family.
enum class BackpropKind { kBp, kDp, kMp, kGPipe, kOneFOneB };
std::unique_ptr<Algorithm> makeBackprop(const TrainConfig& cfg, BackpropKind kind);

// The program builders (also used by Parle and PETRA for their inner pipelines).
std::unique_ptr<Schedule> makeDataParallelSchedule(const std::string& name);  // bp, dp
std::unique_ptr<Schedule> makeModelParallelSchedule();                        // mp
std::unique_ptr<Schedule> makeGPipeSchedule();                                // gpipe
std::unique_ptr<Schedule> makeOneFOneBSchedule();                             // 1f1b
// One of the three synchronous pipelines by name (mp | gpipe | 1f1b).
std::unique_ptr<Schedule> makePipelineSchedule(const std::string& name);

}  // namespace sw
