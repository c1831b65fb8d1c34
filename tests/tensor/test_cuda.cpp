// The CUDA side of the build: libraries link, and on a machine with a GPU a kernel launches.
#include <gtest/gtest.h>

#include "tensor/cuda/cuda_info.h"

using namespace afd;

TEST(Cuda, LibrariesLinkAndReportVersions) {
  if (!cuda::built_with_cuda()) GTEST_SKIP() << "built without CUDA (meson -Dcuda=disabled or no nvcc)";
  std::string versions = cuda::library_versions();
  EXPECT_NE(versions.find("cuDNN"), std::string::npos);
  EXPECT_NE(versions.find("NCCL"), std::string::npos);
  std::cout << "[ info ] " << versions << ", visible devices: " << cuda::device_count() << "\n";
}

TEST(Cuda, KernelLaunchesAndCopiesBack) {
  if (!cuda::built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device is visible on this machine";
  std::vector<float> out(1000, 0.0f);
  std::string name = cuda::smoke_test(1000, 2.5f, out.data());
  for (float v : out) ASSERT_EQ(v, 2.5f);
  std::cout << "[ info ] ran on " << name << "\n";
}
