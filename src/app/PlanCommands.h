// `stagewise profile` (measure a model and this machine; MPI, every rank at once) and
// `stagewise plan` (predict and rank algorithms, partitions and micro-batching for a cluster;
// no MPI, no device). Bad input throws InputError naming the file or flag.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "comm/Communicator.h"

namespace sw {

int profileCommand(const std::vector<std::string>& args, Communicator& world, int localRanks, std::ostream& out);
int planCommand(const std::vector<std::string>& args, std::ostream& out);

}  // namespace sw
