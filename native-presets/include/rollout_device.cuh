// Device helpers our kernel files share (nvcc only; the JNI side never includes this): bf16
// conversions that round as libtorch rounds, a warp's float sum in one fixed order, and
// programmatic dependent launch.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <utility>

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

// c[16 x 8] += a[16 x 16] * b[16 x 8]; a row-major, b column-major, bf16 in, float32 accumulate.
// Fragments (lane = 4 * gid + tig): a {(gid, 2tig..+1), (gid+8, 2tig..), (gid, 8+2tig..), (gid+8, 8+2tig..)};
// b {(k 2tig..+1, n gid), (k 8+2tig.., n gid)}; c {(gid, 2tig), (gid, 2tig+1), (gid+8, 2tig), (gid+8, 2tig+1)}.
// (sm_80 and later.)
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Programmatic dependent launch (sm_90, issue #20): a kernel launched with it may start while the
// kernel before it in the stream is still running, so that its launch and its prologue (loading
// weights into L2, which no kernel writes) overlap the other's tail. At batch 1 a 0.5B decode step
// is some 150 kernels of a few microseconds each, and the gaps between them are a fifth of it.
// Every kernel launched this way calls pdl_wait() before it reads or writes anything the kernels
// before it touch: the wait returns once those have finished and their writes are visible, so the
// order of memory effects is the stream's. Launched without it, both calls return at once.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next kernel's blocks be scheduled before this one's last blocks finish; called once a
// block is past its main loop, so that the next kernel's waiting blocks do not take an SM from
// this one's blocks that have not started.
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;");
#endif
}

// Whether our decode kernels are launched with programmatic dependent launch: ROLLOUT_PDL=1, read
// once. Off by default until measured on a GPU (docs/benchmarks.md).
inline bool pdl_enabled() {
    static const bool on = [] {
        const char* e = std::getenv("ROLLOUT_PDL");
        return e != nullptr && e[0] == '1';
    }();
    return on;
}

// Whether this kernel was compiled with the wait in it: PTX for sm_90 or later. A build for an
// older architecture JIT-compiled on a Hopper card has no griddepcontrol.wait (it is behind
// __CUDA_ARCH__ >= 900), and launched early it would race the kernel before it. Asked once per
// kernel; the engine launches from one thread, tests from few.
inline bool waits(const void* kernel) {
    static std::mutex lock;
    static std::unordered_map<const void*, bool> known;
    std::lock_guard<std::mutex> guard(lock);
    auto it = known.find(kernel);
    if (it != known.end()) return it->second;
    cudaFuncAttributes attributes{};
    const bool yes = cudaFuncGetAttributes(&attributes, kernel) == cudaSuccess && attributes.ptxVersion >= 90;
    if (!yes) cudaGetLastError();   // a failed query must not fail the next launch's check
    known.emplace(kernel, yes);
    return yes;
}

// kernel<<<grid, block, smem, stream>>>(args...), with programmatic dependent launch where enabled
// and the kernel waits. A failed launch's error is also taken off the thread's last error, so that
// it fails this launch alone, not the next op that checks.
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
    cudaLaunchConfig_t config{};
    config.gridDim = grid;
    config.blockDim = block;
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    cudaLaunchAttribute attribute[1] = {};
    attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute[0].val.programmaticStreamSerializationAllowed = 1;
    config.attrs = attribute;
    config.numAttrs = pdl_enabled() && waits(reinterpret_cast<const void*>(kernel)) ? 1 : 0;
    const cudaError_t launched = cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
    const cudaError_t last = cudaGetLastError();
    return launched != cudaSuccess ? launched : last;
}

}  // namespace device
}  // namespace rollout
