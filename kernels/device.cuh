// Device discovery: how many CUDA devices this process can use (0 without driver or GPU).
#pragma once

namespace sw::kernels {
int deviceCount();
}
