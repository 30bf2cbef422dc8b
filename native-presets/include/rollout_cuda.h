// The C++ that dev.rollout.model.RolloutCuda binds: small calls into the libtorch that runs the
// server, which the org.bytedeco:pytorch classes reach only through torch_cuda's JNI library
// (that one needs cuBLAS and cuDNN JNI glue, tens of MB the GPU distribution leaves out), and
// our kernels (rollout_kernels.h), launched on libtorch's current stream so that they join the
// step's stream order and CUDA-graph captures.
#pragma once
#include <stdexcept>

#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include "rollout_kernels.h"

namespace rollout {

// Returns the blocks libtorch's caching allocator holds but no tensor uses to the device, so
// that memory released for the trainer is really free (nvidia-smi, cudaMemGetInfo).
inline void emptyCache() {
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
}

// libtorch's caching allocator on the current device, in bytes. which: 0 allocated to tensors
// now, 1 the most allocated so far, 2 reserved from the device now, 3 the most reserved so far.
inline long long memoryStat(int which) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
    constexpr size_t aggregate = 0;  // StatType::AGGREGATE, both pools (its namespace moved between versions)
    switch (which) {
        case 0: return stats.allocated_bytes[aggregate].current;
        case 1: return stats.allocated_bytes[aggregate].peak;
        case 2: return stats.reserved_bytes[aggregate].current;
        case 3: return stats.reserved_bytes[aggregate].peak;
        default: throw std::invalid_argument("memoryStat: which must be 0 to 3");
    }
}

inline void resetPeakMemoryStats() {
    c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
}

inline int pagedDecodePartitions(int maxBlocks, int blockSize) {
    return kernels::paged_decode_partitions(maxBlocks, blockSize);
}

// Decode attention from the paged KV cache (paged_attention.cu); every pointer is a tensor's
// data_ptr on the current device. Throws (a Java RuntimeException) when it cannot launch.
inline void pagedDecodeAttention(long long q, long long kCache, long long vCache, long long blockTable,
                                 long long seqLens, long long partM, long long partL, long long partAcc, long long out,
                                 int batch, int numHeads, int numKvHeads, int headDim, int blockSize, int maxBlocks,
                                 float scale) {
    kernels::PagedDecodeArgs a{reinterpret_cast<const void*>(q), reinterpret_cast<const void*>(kCache),
                               reinterpret_cast<const void*>(vCache), reinterpret_cast<const void*>(blockTable),
                               reinterpret_cast<const void*>(seqLens), reinterpret_cast<void*>(partM),
                               reinterpret_cast<void*>(partL), reinterpret_cast<void*>(partAcc),
                               reinterpret_cast<void*>(out), batch, numHeads, numKvHeads, headDim, blockSize,
                               maxBlocks, scale};
    const char* err = kernels::paged_decode_attention(a, c10::cuda::getCurrentCUDAStream().stream());
    if (err != nullptr) throw std::runtime_error(err);
}

namespace detail {
inline void check(const char* err) {
    if (err != nullptr) throw std::runtime_error(err);
}
inline cudaStream_t stream() {
    return c10::cuda::getCurrentCUDAStream().stream();
}
}  // namespace detail

// The fused per-layer ops (fused_ops.cu); arguments are tensors' data_ptrs, delta and the norms may be 0.
inline void rmsNorm(long long x, long long delta, long long hOut, long long w, long long out, int rows, int hidden,
                    float eps) {
    detail::check(kernels::rms_norm(reinterpret_cast<const void*>(x), reinterpret_cast<const void*>(delta),
                                    reinterpret_cast<void*>(hOut), reinterpret_cast<const void*>(w),
                                    reinterpret_cast<void*>(out), rows, hidden, eps, detail::stream()));
}

inline void siluAndMul(long long gateUp, long long out, int rows, int inter) {
    detail::check(kernels::silu_and_mul(reinterpret_cast<const void*>(gateUp), reinterpret_cast<void*>(out), rows,
                                        inter, detail::stream()));
}

inline void ropeAndCache(long long qkv, long long positions, long long slots, long long cos, long long sin,
                         long long qNorm, long long kNorm, long long qOut, long long kCache, long long vCache,
                         int tokens, int numHeads, int numKvHeads, int headDim, float eps) {
    kernels::RopeArgs a{reinterpret_cast<const void*>(qkv), reinterpret_cast<const void*>(positions),
                        reinterpret_cast<const void*>(slots), reinterpret_cast<const void*>(cos),
                        reinterpret_cast<const void*>(sin), reinterpret_cast<const void*>(qNorm),
                        reinterpret_cast<const void*>(kNorm), reinterpret_cast<void*>(qOut),
                        reinterpret_cast<void*>(kCache), reinterpret_cast<void*>(vCache), tokens, numHeads,
                        numKvHeads, headDim, eps};
    detail::check(kernels::rope_and_cache(a, detail::stream()));
}

// Samples one token per row of the logits (sampling.cu); arguments are tensors' data_ptrs.
inline void sampleRows(long long logits, long long temperature, long long uniform, long long out, int rows, int vocab) {
    detail::check(kernels::sample_rows(reinterpret_cast<const void*>(logits), reinterpret_cast<const void*>(temperature),
                                       reinterpret_cast<const void*>(uniform), reinterpret_cast<void*>(out), rows, vocab,
                                       detail::stream()));
}

// CUDA graphs of decode steps (proven from Java by a JNI spike first: docs/gpu.md).
// Warm-up and capture run on a side stream, as CUDA requires; every graph allocates from one
// memory pool, as vLLM's do, since they never run at the same time. All on the engine thread:
// libtorch's current stream is per thread.
inline c10::cuda::CUDAStream& captureStream() {
    static c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
    return stream;
}

// The pool every live graph shares, and how many graphs hold it. A pool whose graphs were all
// destroyed cannot take a new capture (libtorch 2.11's host allocator keeps it, released, under
// the same id and asserts on reuse), so the first capture after that starts a fresh pool; the old
// one's memory goes back with the next emptyCache.
struct GraphPool {
    decltype(at::cuda::graph_pool_handle()) id{};
    long live = 0;
};

inline GraphPool& graphPool() {
    static GraphPool pool;
    return pool;
}

// Runs the thread's later libtorch work on the capture stream (for the warm-up before a capture).
inline void useCaptureStream() {
    c10::cuda::getCurrentCUDAStream().synchronize();
    c10::cuda::setCurrentCUDAStream(captureStream());
}

// Back to the default stream, after the capture stream's work is done.
inline void useDefaultStream() {
    captureStream().synchronize();
    c10::cuda::setCurrentCUDAStream(c10::cuda::getDefaultCUDAStream());
}

inline void graphDestroy(long long handle) {
    delete reinterpret_cast<at::cuda::CUDAGraph*>(handle);
    graphPool().live--;
}

// Starts capturing the thread's libtorch work on the capture stream; returns the graph's handle.
inline long long graphBegin() {
    GraphPool& pool = graphPool();
    if (pool.live == 0) pool.id = at::cuda::graph_pool_handle();
    auto* graph = new at::cuda::CUDAGraph();
    pool.live++;  // from here on, deleting the graph gives its share of the pool back
    useCaptureStream();
    try {
        graph->capture_begin(pool.id, cudaStreamCaptureModeThreadLocal);
    } catch (...) {
        graphDestroy(reinterpret_cast<long long>(graph));
        useDefaultStream();
        throw;
    }
    return reinterpret_cast<long long>(graph);
}

inline void graphEnd(long long handle) {
    auto* graph = reinterpret_cast<at::cuda::CUDAGraph*>(handle);
    try {
        graph->capture_end();
    } catch (...) {
        useDefaultStream();
        throw;
    }
    useDefaultStream();
}

inline void graphReplay(long long handle) {
    reinterpret_cast<at::cuda::CUDAGraph*>(handle)->replay();
}

// CUDA events with timing on the current stream, for benchmarks' per-phase profiles
// (dev.rollout.model.PhaseTimer): the presets' CUDAEvent pulls in the CUDA presets' own JNI,
// which the distribution does not carry.
inline void cudaCheck(cudaError_t r) {
    if (r != cudaSuccess) throw std::runtime_error(cudaGetErrorString(r));
}

inline long long eventCreate() {
    cudaEvent_t e;
    cudaCheck(cudaEventCreate(&e));
    return reinterpret_cast<long long>(e);
}

inline void eventRecord(long long e) {
    cudaCheck(cudaEventRecord(reinterpret_cast<cudaEvent_t>(e), detail::stream()));
}

inline void eventSynchronize(long long e) {
    cudaCheck(cudaEventSynchronize(reinterpret_cast<cudaEvent_t>(e)));
}

inline float eventElapsedMs(long long from, long long to) {
    float ms = 0;
    cudaCheck(cudaEventElapsedTime(&ms, reinterpret_cast<cudaEvent_t>(from), reinterpret_cast<cudaEvent_t>(to)));
    return ms;
}


}  // namespace rollout
