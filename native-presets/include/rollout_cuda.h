// The C++ that dev.rollout.model.RolloutCuda binds: small calls into the libtorch that runs the
// server, which the org.bytedeco:pytorch classes reach only through torch_cuda's JNI library
// (that one needs cuBLAS and cuDNN JNI glue, tens of MB the GPU distribution leaves out).
#pragma once
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

namespace rollout {

// Returns the blocks libtorch's caching allocator holds but no tensor uses to the device, so
// that memory released for the trainer is really free (nvidia-smi, cudaMemGetInfo).
inline void emptyCache() {
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
}

}  // namespace rollout
