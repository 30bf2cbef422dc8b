// The C++ that dev.rollout.model.RolloutCuda binds: small calls into the libtorch that runs the
// server, which the org.bytedeco:pytorch classes reach only through torch_cuda's JNI library
// (that one needs cuBLAS and cuDNN JNI glue, tens of MB the GPU distribution leaves out), and
// our kernels (rollout_kernels.h), launched on libtorch's current stream so that they join the
// step's stream order and CUDA-graph captures.
#pragma once
#include <climits>
#include <stdexcept>

#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAGraph.h>
#include <ATen/ops/_grouped_mm.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include "rollout_checks.h"
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

inline int pagedDecodeSplits(int batch, int numKvHeads, int headDim, int maxBlocks, int blockSize, int partitionTokens) {
    return kernels::paged_decode_plan(batch, numKvHeads, headDim, maxBlocks, blockSize, partitionTokens).splits;
}

// A mixture of experts' GEMMs in one call: x (T, K) in groups of rows sorted by expert, group e
// ending at offsets[e] ((E) int32, cumulative), each times w[e]^T (w (E, N, K), a checkpoint's
// linear layout, so the transpose is a view); (T, N). libtorch checks the operands.
inline at::Tensor groupedMm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& offsets) {
    if (x.dim() != 2 || w.dim() != 3 || offsets.dim() != 1 || offsets.size(0) != w.size(0) || x.size(1) != w.size(2))
        throw std::invalid_argument("groupedMm: x must be (T, K), w (E, N, K) and offsets (E)");
    return at::_grouped_mm(x, w.transpose(1, 2), offsets);
}

namespace detail {
inline void check(const char* err) {
    if (err != nullptr) throw std::runtime_error(err);
}
inline cudaStream_t stream() {
    return c10::cuda::getCurrentCUDAStream().stream();
}
// Where the kernels run, so where every tensor handed to them must be: libtorch's current device.
inline c10::Device device() {
    return c10::Device(c10::kCUDA, c10::cuda::current_device());
}
}  // namespace detail

// The kernels' entry points take libtorch's tensors, as the presets' own functions do, and check
// them (rollout_checks.h) before taking their data pointers: a wrong tensor throws (a Java
// RuntimeException), it is never read or written out of bounds. Sizes come from the tensors
// themselves. Outputs are tensors the caller allocated, written in place.

// Decode attention from the paged KV cache (paged_attention.cu).
inline void pagedDecodeAttention(const at::Tensor& q, const at::Tensor& kCache, const at::Tensor& vCache,
                                 const at::Tensor& blockTable, const at::Tensor& seqLens, const at::Tensor& partM,
                                 const at::Tensor& partL, const at::Tensor& partAcc, const at::Tensor& counters,
                                 const at::Tensor& out, int blockSize, int partitionTokens, float scale) {
    const int64_t maxBlocks = blockTable.defined() && blockTable.dim() == 2 ? blockTable.size(1) : 0;
    const int64_t batch = q.defined() && q.dim() == 3 ? q.size(0) : 0;
    const int64_t nKv = kCache.defined() && kCache.dim() == 3 ? kCache.size(1) : 0;
    const int64_t headDim = q.defined() && q.dim() == 3 ? q.size(2) : 0;
    const kernels::PagedDecodePlan plan =
            blockSize > 0 && maxBlocks <= INT_MAX && batch <= INT_MAX && nKv <= INT_MAX && headDim <= INT_MAX && partitionTokens >= 0
                    ? kernels::paged_decode_plan(static_cast<int>(batch), static_cast<int>(nKv), static_cast<int>(headDim),
                                                 static_cast<int>(maxBlocks), blockSize, partitionTokens)
                    : kernels::PagedDecodePlan{0, 0};
    checks::pagedDecodeAttention(q, kCache, vCache, blockTable, seqLens, partM, partL, partAcc, counters, out, blockSize,
                                 partitionTokens, plan.splits, detail::device());
    kernels::PagedDecodeArgs a{q.data_ptr(), kCache.data_ptr(), vCache.data_ptr(), blockTable.data_ptr(),
                               seqLens.data_ptr(), partM.data_ptr(), partL.data_ptr(), partAcc.data_ptr(),
                               counters.data_ptr(), out.data_ptr(), static_cast<int>(batch), static_cast<int>(q.size(1)),
                               static_cast<int>(nKv), static_cast<int>(q.size(2)), blockSize,
                               static_cast<int>(maxBlocks), plan.splits, plan.min_chunk, partitionTokens, scale};
    detail::check(kernels::paged_decode_attention(a, detail::stream()));
}

// The fused per-layer ops (fused_ops.cu). out = rmsNorm(x) * w.
inline void rmsNorm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& out, float eps) {
    checks::rmsNorm(x, nullptr, nullptr, w, out, detail::device());
    detail::check(kernels::rms_norm(x.data_ptr(), nullptr, nullptr, w.data_ptr(), out.data_ptr(),
                                    static_cast<int>(x.size(0)), static_cast<int>(x.size(1)), eps, detail::stream()));
}

// hOut = x + delta, out = rmsNorm(hOut) * w: the residual add and the norm after it.
inline void addRmsNorm(const at::Tensor& x, const at::Tensor& delta, const at::Tensor& hOut, const at::Tensor& w,
                       const at::Tensor& out, float eps) {
    checks::rmsNorm(x, &delta, &hOut, w, out, detail::device());
    detail::check(kernels::rms_norm(x.data_ptr(), delta.data_ptr(), hOut.data_ptr(), w.data_ptr(), out.data_ptr(),
                                    static_cast<int>(x.size(0)), static_cast<int>(x.size(1)), eps, detail::stream()));
}

// out = silu(gateUp[:, :inter]) * gateUp[:, inter:], inter = out's width.
inline void siluAndMul(const at::Tensor& gateUp, const at::Tensor& out) {
    checks::siluAndMul(gateUp, out, detail::device());
    detail::check(kernels::silu_and_mul(gateUp.data_ptr(), out.data_ptr(), static_cast<int>(gateUp.size(0)),
                                        static_cast<int>(out.size(1)), detail::stream()));
}

// q/k per-head norm (qNorm and kNorm may be null), RoPE, q into qOut, k and v into the caches.
inline void ropeAndCache(const at::Tensor& qkv, const at::Tensor& positions, const at::Tensor& slots,
                         const at::Tensor& cos, const at::Tensor& sin, const at::Tensor* qNorm, const at::Tensor* kNorm,
                         const at::Tensor& qOut, const at::Tensor& kCache, const at::Tensor& vCache, float eps) {
    checks::ropeAndCache(qkv, positions, slots, cos, sin, qNorm, kNorm, qOut, kCache, vCache, detail::device());
    kernels::RopeArgs a{qkv.data_ptr(), positions.data_ptr(), slots.data_ptr(), cos.data_ptr(), sin.data_ptr(),
                        qNorm == nullptr ? nullptr : qNorm->data_ptr(), kNorm == nullptr ? nullptr : kNorm->data_ptr(),
                        qOut.data_ptr(), kCache.data_ptr(), vCache.data_ptr(), static_cast<int>(qOut.size(0)),
                        static_cast<int>(qOut.size(1)), static_cast<int>(kCache.size(1)), static_cast<int>(qOut.size(2)),
                        eps};
    detail::check(kernels::rope_and_cache(a, detail::stream()));
}

// One token per row of the logits (sampling.cu): out (rows, 2) gets (token, logprob). maskWords
// (T, ceil(vocab / 64)) int64 and maskRow (rows) int64, both or neither: each row's allowed tokens.
inline void sampleRows(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform,
                       const at::Tensor& out, const at::Tensor* maskWords, const at::Tensor* maskRow) {
    checks::sampleRows(logits, temperature, uniform, out, maskWords, maskRow, detail::device());
    detail::check(kernels::sample_rows(logits.data_ptr(), logits.scalar_type() == c10::ScalarType::BFloat16,
                                       temperature.data_ptr(), uniform.data_ptr(), out.data_ptr(),
                                       static_cast<int>(logits.size(0)), static_cast<int>(logits.size(1)),
                                       maskWords == nullptr ? nullptr : maskWords->data_ptr(),
                                       maskRow == nullptr ? nullptr : maskRow->data_ptr(),
                                       maskWords == nullptr ? 0 : static_cast<int>(maskWords->size(0)), detail::stream()));
}

// A mixture of experts' routing (moe.cu): softmax over the router's logits, the top k, optionally
// renormalised and rounded to bf16; each token's experts also into routed at its slot where both
// are given.
inline void moeRoute(const at::Tensor& logits, const at::Tensor& weights, const at::Tensor& experts,
                     const at::Tensor* routed, const at::Tensor* slots, bool renormalize, bool roundWeights) {
    checks::moeRoute(logits, weights, experts, routed, slots, kernels::moe_max_experts(), detail::device());
    detail::check(kernels::moe_route(logits.data_ptr(), weights.data_ptr(), experts.data_ptr(),
                                     routed == nullptr ? nullptr : routed->data_ptr(),
                                     routed == nullptr ? 0 : routed->stride(0),
                                     slots == nullptr ? nullptr : slots->data_ptr(), static_cast<int>(logits.size(0)),
                                     static_cast<int>(logits.size(1)), static_cast<int>(weights.size(1)), renormalize,
                                     roundWeights, detail::stream()));
}

// The copies (token, choice) sorted by expert, stably: each copy's row, each row's token, and
// where each expert's block ends.
inline void moeAlign(const at::Tensor& experts, const at::Tensor& rowOf, const at::Tensor& tokenOf, const at::Tensor& ends) {
    checks::moeAlign(experts, rowOf, tokenOf, ends, detail::device());
    detail::check(kernels::moe_align(experts.data_ptr(), rowOf.data_ptr(), tokenOf.data_ptr(), ends.data_ptr(),
                                     static_cast<int>(rowOf.size(0)), static_cast<int>(ends.size(0)),
                                     static_cast<int>(experts.size(1)), detail::stream()));
}

// Each token's k expert outputs, weighted and summed in the order of its choices.
inline void moeCombine(const at::Tensor& ys, const at::Tensor& rowOf, const at::Tensor& weights, const at::Tensor& out,
                       bool roundProducts) {
    checks::moeCombine(ys, rowOf, weights, out, detail::device());
    detail::check(kernels::moe_combine(ys.data_ptr(), rowOf.data_ptr(), weights.data_ptr(), out.data_ptr(),
                                       static_cast<int>(weights.size(0)), static_cast<int>(ys.size(1)),
                                       static_cast<int>(weights.size(1)), roundProducts, detail::stream()));
}

// The experts' GEMMs as matrix-vector products over rows sorted by expert (a few copies a step):
// act = silu(x[tokenOf] . gate) * (x[tokenOf] . up), each expert's rows read once per run of rows.
inline void moeGateUp(const at::Tensor& x, const at::Tensor& tokenOf, const at::Tensor& gateUp, const at::Tensor& ends,
                      const at::Tensor& act) {
    checks::moeGateUp(x, tokenOf, gateUp, ends, act, detail::device());
    detail::check(kernels::moe_gate_up(x.data_ptr(), tokenOf.data_ptr(), gateUp.data_ptr(), ends.data_ptr(), act.data_ptr(),
                                       static_cast<int>(act.size(0)), static_cast<int>(gateUp.size(0)),
                                       static_cast<int>(gateUp.size(2)), static_cast<int>(act.size(1)), detail::stream()));
}

// ys = act . down of each row's expert.
inline void moeDown(const at::Tensor& act, const at::Tensor& down, const at::Tensor& ends, const at::Tensor& ys) {
    checks::moeDown(act, down, ends, ys, detail::device());
    detail::check(kernels::moe_down(act.data_ptr(), down.data_ptr(), ends.data_ptr(), ys.data_ptr(),
                                    static_cast<int>(act.size(0)), static_cast<int>(down.size(0)),
                                    static_cast<int>(down.size(1)), static_cast<int>(down.size(2)), detail::stream()));
}

// A dense projection at decode's few rows, with its neighbours fused (dense_gemv.cu): epilogue 0
// out = xn w^T (+ bias), 1 out += x w^T in place, 2 out = silu(g) * u; xn = RMSNorm(x) * normW
// where normW is given, else x.
inline void denseGemv(const at::Tensor& x, const at::Tensor* normW, const at::Tensor& w, const at::Tensor* bias,
                      const at::Tensor& out, int epilogue, float eps) {
    checks::denseGemv(x, normW, w, bias, out, epilogue, kernels::gemv_max_rows(), detail::device());
    kernels::GemvArgs a{};
    a.x = x.data_ptr();
    a.norm_w = normW != nullptr ? normW->data_ptr() : nullptr;
    a.w = w.data_ptr();
    a.bias = bias != nullptr ? bias->data_ptr() : nullptr;
    a.out = out.data_ptr();
    a.rows = static_cast<int>(x.size(0));
    a.n = static_cast<int>(w.size(0));
    a.k = static_cast<int>(w.size(1));
    a.epilogue = epilogue;
    a.eps = eps;
    detail::check(kernels::dense_gemv(a, detail::stream()));
}

inline int gemvMaxRows() { return kernels::gemv_max_rows(); }

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
