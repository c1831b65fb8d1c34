// What the CUDA side of the build can see, and the entry points into the CUDA backend. The real
// versions are built when the build has CUDA (meson -Dcuda=enabled|auto with nvcc present);
// cuda_info_stub.cpp otherwise (every entry point then throws or reports nothing).
#pragma once
#include <string>

namespace afd {
class Backend;
struct MemoryStats;
}  // namespace afd

namespace afd::cuda {

bool built_with_cuda();
// Number of visible CUDA devices; 0 when none (or no driver), never throws.
int device_count();
// Versions of the runtime and the linked libraries, e.g. "CUDA runtime 13000, cuBLAS 13.0.0,
// cuDNN 90800, NCCL 22703"; empty without CUDA.
std::string library_versions();
// Runs a tiny kernel on device 0 that fills n floats with `value` and copies them back; returns
// the device's name. Throws when no device is visible. Proves compile, link and launch work.
std::string smoke_test(int n, float value, float* out);
// The name of device `index` ("NVIDIA H100 80GB HBM3").
std::string device_name(int index);
// Opens and closes the range a profiler started with "profile from start off" records
// (cudaProfilerStart/Stop; e.g. ncu --profile-from-start off). Without CUDA: nothing.
void profiler_start();
void profiler_stop();

// The tensor backend of device `index`, created on first use (tensor/cuda/cuda_backend.h).
Backend& device_backend(int index);
MemoryStats memory_stats(int index);
void reset_peak_memory(int index);
void synchronize(int index);

}  // namespace afd::cuda
