// A trained run used outside training:
//   stagewise eval   (MPI, any rank count the run's algorithm takes: the checkpoint is resharded)
//   stagewise export (one process: the whole model in one safetensors or HDF5 file, with
//                     PyTorch's names for the zoo's ResNets; tools/load_in_torch.py loads it)
// Bad input throws InputError naming the run, step, flag or key.
#pragma once
#include <ostream>
#include <string>
#include <vector>

#include "comm/Communicator.h"

namespace sw {

int evalCommand(const std::vector<std::string>& args, Communicator& world, int localRanks, int localRank,
                std::ostream& out);
int exportCommand(const std::vector<std::string>& args, std::ostream& out);

// The name PyTorch's module uses for stagewise parameter or buffer `name` of zoo model `model`
// (torchvision's for resnet18/34/50; stagewise's own, unchanged, for every other model).
std::string torchName(const std::string& model, const std::string& name);

}  // namespace sw
