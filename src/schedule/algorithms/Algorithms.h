// Factories of the algorithm schedules (one file per algorithm in this folder).
#pragma once
#include <memory>
#include <string>

#include "schedule/Schedule.h"

namespace sw {

std::unique_ptr<Schedule> makeDataParallel(const std::string& name);  // bp (1 rank) and dp
std::unique_ptr<Schedule> makeModelParallel();                        // mp
std::unique_ptr<Schedule> makeGPipe();                                // gpipe
std::unique_ptr<Schedule> makeOneFOneB();                             // 1f1b
std::unique_ptr<Schedule> makePipeDream();                            // pipedream
std::unique_ptr<Schedule> makeSpecTrain();                            // spectrain (v1; v2 = pipedream)
std::unique_ptr<Schedule> makeDelayed();                              // petra (asynchronous)
std::unique_ptr<Schedule> makeInterlocking();                         // interlocking, local

// parle: `pipeline` (1f1b | gpipe | mp) per replica, ElasticSync after the round's inner steps
// (kAfterSteps, L >= 1) or before every step (kEveryStep, Elastic-SGD with L = 0).
enum class ParleCoupling { kAfterSteps, kEveryStep };
std::unique_ptr<Schedule> makeParle(const std::string& pipeline, ParleCoupling coupling);

}  // namespace sw
