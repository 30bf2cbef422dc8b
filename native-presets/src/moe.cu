// A mixture of experts' small ops around its two grouped GEMMs, fused: about twenty libtorch
// kernels a layer become three (issue #19: at batch 1 the eager step was bound by launching them,
// and a captured one by their count).
//
//   moe_route    router logits [T, E] bf16 -> softmax (float32), the top k most probable first,
//                optionally renormalised over the k, optionally rounded to bf16 (Qwen hands its
//                weights back in the model's dtype, Mixtral in float32): weights [T, k] float32,
//                experts [T, k] int32, and the experts again at each token's slot of a routed-experts
//                record [slots, k] int32 when one is kept (rows routed_stride apart: one layer of the
//                cache's [slots, layers, k] record)
//   moe_align    experts [N = T k] -> the copies sorted by expert, stably (by expert, then by copy
//                index t k + j: what a stable argsort gives): row_of [N] int64, the sorted row of
//                each copy; token_of [N] int64, the token of each sorted row; ends [E] int32, where
//                each expert's block of rows ends (the grouped GEMMs' offsets)
//   moe_combine  ys [N, H] bf16 in sorted rows -> out [T, H] bf16: each token's k outputs weighted
//                and summed in float32 in the order of its choices (no atomics: the same bits on every
//                run); each product rounded to bf16 first where the weights are bf16 (as torch's
//                bf16 * bf16 multiply rounds), kept in float32 where they are float32
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "rollout_device.cuh"
#include "rollout_kernels.h"

namespace {

using bf16 = __nv_bfloat16;

using rollout::device::b;
using rollout::device::f;

constexpr int kMaxPerLane = 32;    // experts per lane: E <= 1024
constexpr int kAlignShared = 48 * 1024;

// One warp per token; lane l holds experts l, l + 32, ... of its row.
__global__ void moe_route_kernel(const bf16* __restrict__ logits, float* __restrict__ weights, int* __restrict__ experts,
                                 int* __restrict__ routed, long long routed_stride, const long long* __restrict__ slots,
                                 int tokens, int num_experts, int k, bool renormalize, bool round_weights) {
    const int warps = blockDim.x / 32, lane = threadIdx.x % 32;
    const int t = blockIdx.x * warps + threadIdx.x / 32;
    if (t >= tokens) return;
    const bf16* row = logits + (size_t) t * num_experts;
    float p[kMaxPerLane];
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < kMaxPerLane; i++) {
        const int e = lane + 32 * i;
        p[i] = e < num_experts ? f(row[e]) : -INFINITY;
        mx = fmaxf(mx, p[i]);   // fmaxf passes over a NaN
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.f;
    unsigned taken = 0;   // bit i: expert lane + 32 i is chosen already, or does not exist
#pragma unroll
    for (int i = 0; i < kMaxPerLane; i++) {
        if (lane + 32 * i < num_experts) {
            p[i] = expf(p[i] - mx);
            sum += p[i];
        } else {
            taken |= 1u << i;
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    // k rounds of a warp-wide argmax over the experts not yet taken; ties go to the lower expert.
    // A NaN ranks highest, as torch.topk ranks it: every round picks a real expert whatever the
    // logits hold (a row of NaN or -inf included), so the sort never indexes past the experts
    float chosen_p = 0.f, total = 0.f;
    int chosen_e = 0;
    for (int j = 0; j < k; j++) {
        float best = -INFINITY;
        int at = -1;
#pragma unroll
        for (int i = 0; i < kMaxPerLane; i++) {
            const float v = isnan(p[i]) ? INFINITY : p[i];
            if (!((taken >> i) & 1u) && (at < 0 || v > best)) best = v, at = i;
        }
        int best_e = at < 0 ? INT_MAX : lane + 32 * at;   // INT_MAX: this lane has nothing left
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float ob = __shfl_xor_sync(0xffffffffu, best, o);
            const int oe = __shfl_xor_sync(0xffffffffu, best_e, o);
            if (ob > best || (ob == best && oe < best_e)) best = ob, best_e = oe;
        }
        if (best_e % 32 == lane) taken |= 1u << (best_e / 32);   // k <= E: best_e is a real expert
        const float prob = (best == INFINITY ? NAN : best) / sum;
        if (lane == j) chosen_p = prob, chosen_e = best_e;
        total += prob;   // the same order on every lane: j = 0, 1, ...
    }
    if (lane < k) {
        float w = renormalize ? chosen_p / total : chosen_p;
        if (round_weights) w = f(b(w));
        weights[(size_t) t * k + lane] = w;
        experts[(size_t) t * k + lane] = chosen_e;
        if (routed != nullptr) routed[slots[t] * routed_stride + lane] = chosen_e;
    }
}

// One block. Each warp counts the experts of its own contiguous segment of copies into its own
// row of shared counters; a scan over (expert, warp) gives each warp its first row in every
// expert's block; each warp then walks its segment again 32 copies at a time, in order, ranking
// each copy among the earlier ones of the same expert with a warp match: stable, and no atomics
// on global memory.
__global__ void moe_align_kernel(const int* __restrict__ experts, long long* __restrict__ row_of,
                                 long long* __restrict__ token_of, int* __restrict__ ends, int copies, int num_experts,
                                 int k) {
    extern __shared__ int shared[];
    const int warps = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    int* next = shared;                            // [warps][E]: counts, then each warp's next row per expert
    int* total = shared + warps * num_experts;     // [E]: copies per expert, then where its block starts
    for (int i = threadIdx.x; i < warps * num_experts; i += blockDim.x) next[i] = 0;
    __syncthreads();
    const int per_warp = (copies + warps - 1) / warps;
    const int from = min(copies, warp * per_warp), to = min(copies, from + per_warp);
    int* mine = next + warp * num_experts;
    // an expert id outside 0 .. E - 1 (none comes from moe_route) would write past the counters: clamped
    for (int c = from + lane; c < to; c += 32) atomicAdd(&mine[min(max(experts[c], 0), num_experts - 1)], 1);   // order-free
    __syncthreads();
    // each expert's count per warp becomes that warp's first row within the expert's block
    for (int e = threadIdx.x; e < num_experts; e += blockDim.x) {
        int n = 0;
        for (int w = 0; w < warps; w++) {
            const int c = next[w * num_experts + e];
            next[w * num_experts + e] = n;
            n += c;
        }
        total[e] = n;
    }
    __syncthreads();
    // where each expert's block starts: an exclusive scan over the experts, by the first warp, each
    // lane over a contiguous run of them
    if (warp == 0) {
        const int per_lane = (num_experts + 31) / 32, lo = min(num_experts, lane * per_lane),
                  hi = min(num_experts, lo + per_lane);
        int run = 0;
        for (int e = lo; e < hi; e++) run += total[e];
        int before = run;   // inclusive scan of the runs over the lanes, then exclusive
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int v = __shfl_up_sync(0xffffffffu, before, o);
            if (lane >= o) before += v;
        }
        before -= run;
        for (int e = lo; e < hi; e++) {
            const int n = total[e];
            total[e] = before;
            before += n;
            ends[e] = before;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < warps * num_experts; i += blockDim.x) next[i] += total[i % num_experts];
    __syncthreads();
    for (int base = from; base < to; base += 32) {
        const int c = base + lane;
        const bool live = c < to;
        const int e = live ? min(max(experts[c], 0), num_experts - 1) : -1 - lane;   // a dead lane matches no one
        const unsigned same = __match_any_sync(0xffffffffu, e);
        const int rank = __popc(same & ((1u << lane) - 1));
        if (live) {
            const int row = mine[e] + rank;
            row_of[c] = row;
            token_of[row] = c / k;
        }
        __syncwarp();
        if (live && rank == 0) mine[e] += __popc(same);   // the lowest lane of each expert moves it on
        __syncwarp();
    }
}

// One block per token.
__global__ void moe_combine_kernel(const bf16* __restrict__ ys, const long long* __restrict__ row_of,
                                   const float* __restrict__ weights, bf16* __restrict__ out, int hidden, int k,
                                   bool round_products) {
    const int t = blockIdx.x;
    for (int h = threadIdx.x; h < hidden; h += blockDim.x) {
        float acc = 0.f;
        for (int j = 0; j < k; j++) {
            const size_t c = (size_t) t * k + j;
            float y = f(ys[(size_t) row_of[c] * hidden + h]) * weights[c];
            if (round_products) y = f(b(y));
            acc += y;
        }
        out[(size_t) t * hidden + h] = b(acc);
    }
}

}  // namespace

namespace rollout {
namespace kernels {

int moe_max_experts() { return 32 * kMaxPerLane; }

const char* moe_route(const void* logits, void* weights, void* experts, void* routed, long long routed_stride,
                      const void* slots, int tokens, int num_experts, int k, bool renormalize, bool round_weights,
                      cudaStream_t stream) {
    if (num_experts > 32 * kMaxPerLane) return "moe_route: more than 1024 experts";
    if (k < 1 || k > 32 || k > num_experts) return "moe_route: k must be 1 to 32, and at most the experts";
    if (tokens == 0) return nullptr;
    const int warps = 4;
    moe_route_kernel<<<(tokens + warps - 1) / warps, warps * 32, 0, stream>>>(
            static_cast<const bf16*>(logits), static_cast<float*>(weights), static_cast<int*>(experts),
            static_cast<int*>(routed), routed_stride, static_cast<const long long*>(slots), tokens, num_experts, k,
            renormalize, round_weights);
    return launch_error();
}

const char* moe_align(const void* experts, void* row_of, void* token_of, void* ends, int copies, int num_experts, int k,
                      cudaStream_t stream) {
    // a warp for every 64 copies, up to 32 warps and as many as the shared counters allow
    const int fit = kAlignShared / (int) (num_experts * sizeof(int)) - 1;
    if (fit < 1) return "moe_align: too many experts for one block's shared memory";
    const int warps = max(1, min(min(32, fit), (copies + 63) / 64));
    moe_align_kernel<<<1, warps * 32, (warps + 1) * num_experts * sizeof(int), stream>>>(
            static_cast<const int*>(experts), static_cast<long long*>(row_of), static_cast<long long*>(token_of),
            static_cast<int*>(ends), copies, num_experts, k);
    return launch_error();
}

const char* moe_combine(const void* ys, const void* row_of, const void* weights, void* out, int tokens, int hidden, int k,
                        bool round_products, cudaStream_t stream) {
    if (tokens == 0) return nullptr;
    moe_combine_kernel<<<tokens, min(1024, ((hidden + 31) / 32) * 32), 0, stream>>>(
            static_cast<const bf16*>(ys), static_cast<const long long*>(row_of), static_cast<const float*>(weights),
            static_cast<bf16*>(out), hidden, k, round_products);
    return launch_error();
}

}  // namespace kernels
}  // namespace rollout
