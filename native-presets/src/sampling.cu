// One token for every row of a decode step's logits, in one kernel, for rows that need no top-k,
// top-p or min-p filtering (RL rollouts sample from the whole distribution at temperature 1).
// libtorch's ops take about ten passes over the (rows, vocab) float32 logits for the same work
// (divide by the temperature, argmax, softmax, cumsum, search, log_softmax); at 512 rows of a
// 151,936-token vocabulary each pass moves 311 MB. This kernel reads a row once to find its max
// and the softmax's normaliser, and once more, in order and only up to the drawn token, to invert
// the CDF.
//
//   logits       [rows, vocab] float32 (penalties and bans already written in)
//   temperature  [rows] float32; 0 picks the argmax (the first, as torch.argmax does)
//   uniform      [rows] float32 in [0, 1): the row's draw, from the sequence's own generator
//   out          [rows, 2] float32: (token, logprob of the token under softmax(logits / T))
// The token id travels as a float, exact for vocabularies below 2^24 (the launcher checks).
#include <cuda_runtime.h>
#include <math_constants.h>

#include "rollout_kernels.h"

namespace {

constexpr int THREADS = 1024;
constexpr int WARPS = THREADS / 32;

struct MaxSum {  // an online softmax's running max m and sum of exp(y - m)
    float m, s;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
    if (a.m == -CUDART_INF_F) return b;
    if (b.m == -CUDART_INF_F) return a;
    const float m = fmaxf(a.m, b.m);
    return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

struct ArgMax {  // the largest raw logit and its index; ties go to the lower index
    float v;
    int i;
};

__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

// Inclusive prefix sum over the block, in thread order; total gets the block's sum.
__device__ float block_scan(float x, float* warp_sums, float& total) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) warp_sums[warp] = x;
    __syncthreads();
    if (warp == 0) {
        float w = warp_sums[lane];  // WARPS == 32
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float y = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += y;
        }
        warp_sums[lane] = w;
    }
    __syncthreads();
    total = warp_sums[WARPS - 1];
    const float before = warp == 0 ? 0.f : warp_sums[warp - 1];
    __syncthreads();  // warp_sums is reused by the next tile
    return x + before;
}

__global__ void __launch_bounds__(THREADS) sample_kernel(const float* __restrict__ logits, int vocab,
                                                         const float* __restrict__ temperature,
                                                         const float* __restrict__ uniform, float* __restrict__ out) {
    const int row = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const float* x = logits + (size_t) row * vocab;
    const float t = temperature[row];
    const bool greedy = t <= 0.f;
    const float inv_t = greedy ? 1.f : 1.f / t;

    // 1. the argmax of the raw logits, and max and normaliser of y = x / T (banned tokens are -inf)
    ArgMax am{-CUDART_INF_F, vocab};
    MaxSum ms{-CUDART_INF_F, 0.f};
    for (int v = tid; v < vocab; v += THREADS) {
        const float xv = x[v];
        am = better(am, {xv, v});
        if (xv != -CUDART_INF_F) ms = merge(ms, {xv * inv_t, 1.f});
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        am = better(am, {__shfl_xor_sync(0xffffffffu, am.v, o), __shfl_xor_sync(0xffffffffu, am.i, o)});
        ms = merge(ms, {__shfl_xor_sync(0xffffffffu, ms.m, o), __shfl_xor_sync(0xffffffffu, ms.s, o)});
    }
    __shared__ ArgMax wam[WARPS];
    __shared__ MaxSum wms[WARPS];
    __shared__ float warp_sums[WARPS];
    __shared__ int found;
    if (lane == 0) {
        wam[warp] = am;
        wms[warp] = ms;
    }
    if (tid == 0) found = vocab;
    __syncthreads();
    am = wam[0];
    ms = wms[0];
    for (int w = 1; w < WARPS; w++) {
        am = better(am, wam[w]);
        ms = merge(ms, wms[w]);
    }
    int token = am.i;

    // 2. inverse CDF: the first token whose running sum of exp(y - m) passes u * sum, tile by tile
    if (!greedy) {
        const float target = uniform[row] * ms.s;
        float carry = 0.f;
        for (int base = 0; base < vocab; base += THREADS) {
            const int v = base + tid;
            const float xv = v < vocab ? x[v] : -CUDART_INF_F;
            const float e = xv == -CUDART_INF_F ? 0.f : __expf(xv * inv_t - ms.m);
            float tile;
            const float upto = carry + block_scan(e, warp_sums, tile);
            if (e > 0.f && upto > target) atomicMin(&found, v);
            __syncthreads();
            if (found < vocab) break;  // every thread reads the same value: the loop ends together
            carry += tile;
        }
        // float rounding can leave u * sum past the last running sum: the most likely token then
        if (found < vocab) token = found;
    }
    if (tid == 0) {
        out[2 * row] = (float) token;
        out[2 * row + 1] = x[token] * inv_t - ms.m - __logf(ms.s);
    }
}

}  // namespace

namespace rollout {
namespace kernels {

const char* sample_rows(const void* logits, const void* temperature, const void* uniform, void* out, int rows,
                        int vocab, cudaStream_t stream) {
    if (vocab <= 0 || vocab >= (1 << 24)) return "sample_rows: vocab must be in 1 .. 2^24 - 1 (token ids travel as float32)";
    if (rows == 0) return nullptr;
    sample_kernel<<<rows, THREADS, 0, stream>>>(static_cast<const float*>(logits), vocab,
                                                static_cast<const float*>(temperature),
                                                static_cast<const float*>(uniform), static_cast<float*>(out));
    return launch_error();
}

}  // namespace kernels
}  // namespace rollout
