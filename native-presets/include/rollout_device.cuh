// Device helpers our kernel files share (nvcc only; the JNI side never includes this): bf16
// conversions that round as libtorch rounds, and a warp's float sum in one fixed order.
#pragma once
#include <cuda_bf16.h>

namespace rollout {
namespace device {

__device__ __forceinline__ float f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ __nv_bfloat16 b(float x) { return __float2bfloat16(x); }
// x rounded to bf16 and back: where the unfused ops keep an intermediate in bf16, so do we
__device__ __forceinline__ float round_bf16(float x) { return f(b(x)); }

// The sum of v over the warp's 32 lanes, every lane getting it, by the same xor tree on every call:
// a sum's bits never depend on timing.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

}  // namespace device
}  // namespace rollout
