// Which rank trains which feedback block in layer-parallel DTP (amoudgl/distributed-dtp, spec
// seed-dtp.md 4): every rank runs the same forward update; feedback block G_i is trained by its
// owner and broadcast to the others (the DTP program in DtpAlgorithm.cpp).
#pragma once
#include <string>
#include <vector>


namespace sw::dtp {

enum class Assign { kBalanced, kRoundRobin };
Assign parseAssign(const std::string& s);  // "balanced" | "round_robin"; throws ConfigError

// owner[i] for feedback blocks i = 0..L (owner[0] = -1: G_0 is never trained). cost[i] is G_i's
// feedback work per step. kBalanced minimises the most loaded rank (exact search when P^L is
// small, else longest-processing-time first); kRoundRobin puts G_i on rank i % P, the reference's
// mapping (with P = L + 1, rank i trains G_i and rank 0 only updates F).
std::vector<int> assignLayers(const std::vector<double>& cost, int world, Assign mode);

}  // namespace sw::dtp
