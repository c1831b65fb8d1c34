// Placeholder while the CUDA backend is written (replaced in the next commits).
#include "tensor/backend.h"
#include "tensor/cuda/cuda_info.h"

namespace afd::cuda {
Backend& device_backend(int index) { AFD_FAIL("cuda:{}: the CUDA tensor backend is not implemented yet", index); }
MemoryStats memory_stats(int index) { AFD_FAIL("cuda:{}: not implemented yet", index); }
void reset_peak_memory(int index) { AFD_FAIL("cuda:{}: not implemented yet", index); }
void synchronize(int index) { AFD_FAIL("cuda:{}: not implemented yet", index); }
std::string device_name(int index) { AFD_FAIL("cuda:{}: not implemented yet", index); }
}  // namespace afd::cuda
