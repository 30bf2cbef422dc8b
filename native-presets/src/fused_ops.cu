// The small per-layer ops of a decoder layer, fused: each replaces 2 to 16 libtorch kernels
// (and as many JNI calls, or CUDA-graph nodes). They round where transformers rounds (every
// intermediate that transformers keeps in bf16 is rounded to bf16 here too), so that they change
// the numbers only by the order of float32 sums.
//
//   rms_norm       out = bf16(bf16(x * rsqrt(mean(x^2) + eps)) * w)              x: [T, H]
//   add_rms_norm   h = bf16(x + delta); out = rms_norm(h)                          both [T, H]
//   silu_and_mul   out = bf16(bf16(silu(gate)) * up), gate|up = gu[:, :I]|gu[:, I:]   gu: [T, 2I]
//   rope_and_cache from the fused projection qkv [T, (nH + 2 nKv) D]: optional per-head RMSNorm of
//                  q and k (Qwen3), rotate-half RoPE of q and k at each token's position, q out
//                  to [T, nH, D], k and v written into the paged caches at each token's slot
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "rollout_device.cuh"
#include "rollout_kernels.h"

namespace {

using bf16 = __nv_bfloat16;

using rollout::device::b;
using rollout::device::f;
using rollout::device::round_bf16;
using rollout::device::warp_sum;

// Sum over the block (blockDim.x a multiple of 32, at most 1024).
__device__ float block_sum(float x) {
    __shared__ float part[32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    x = warp_sum(x);
    if (lane == 0) part[warp] = x;
    __syncthreads();
    const int warps = blockDim.x / 32;
    float total = threadIdx.x < warps ? part[threadIdx.x] : 0.f;
    if (warp == 0) total = warp_sum(total);
    if (threadIdx.x == 0) part[0] = total;
    __syncthreads();
    total = part[0];
    __syncthreads();  // part[] is reused by the next call
    return total;
}

// One block per row. With delta: h_out = bf16(x + delta) first, and the norm is of h_out.
__global__ void rms_norm_kernel(const bf16* __restrict__ x, const bf16* __restrict__ delta, bf16* __restrict__ h_out,
                                const bf16* __restrict__ w, bf16* __restrict__ out, int hidden, float eps) {
    const size_t row = (size_t) blockIdx.x * hidden;
    float ss = 0.f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float v = f(x[row + i]);
        if (delta != nullptr) {
            v = round_bf16(v + f(delta[row + i]));
            h_out[row + i] = b(v);
        }
        ss += v * v;
    }
    const float r = rsqrtf(block_sum(ss) / hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        const float v = delta != nullptr ? f(h_out[row + i]) : f(x[row + i]);
        out[row + i] = b(round_bf16(v * r) * f(w[i]));
    }
}

__global__ void silu_and_mul_kernel(const bf16* __restrict__ gu, bf16* __restrict__ out, int inter, size_t n) {
    for (size_t idx = (size_t) blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (size_t) gridDim.x * blockDim.x) {
        const size_t t = idx / inter, i = idx % inter;
        const float g = f(gu[t * 2 * inter + i]), u = f(gu[t * 2 * inter + inter + i]);
        const float s = round_bf16(g / (1.f + expf(-g)));
        out[idx] = b(s * u);
    }
}

// One block per token, one warp per head at a time; lane l owns the rotate-half pairs
// (p, p + D/2) for p = l, l + 32, ...
template <int D>
__global__ void rope_and_cache_kernel(const bf16* __restrict__ qkv, const long long* __restrict__ positions,
                                      const long long* __restrict__ slots, const bf16* __restrict__ cos_table,
                                      const bf16* __restrict__ sin_table, const bf16* __restrict__ q_norm,
                                      const bf16* __restrict__ k_norm, bf16* __restrict__ q_out, bf16* __restrict__ k_cache,
                                      bf16* __restrict__ v_cache, int nH, int nKv, float eps) {
    constexpr int HALF = D / 2, PAIRS = HALF / 32;
    // qkv comes from the kernel before (programmatic dependent launch); a block a token, one wave:
    // the attention after may queue its blocks at once
    rollout::device::pdl_wait();
    rollout::device::pdl_launch_dependents();
    const int t = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    const size_t row = (size_t) t * (nH + 2 * nKv) * D;
    const long long pos = positions[t], slot = slots[t];
    const bf16* cs = cos_table + pos * D;
    const bf16* sn = sin_table + pos * D;
    for (int head = warp; head < nH + 2 * nKv; head += warps) {
        const bf16* src = qkv + row + (size_t) head * D;
        if (head >= nH + nKv) {  // v: straight into the cache
            bf16* dst = v_cache + ((size_t) slot * nKv + (head - nH - nKv)) * D;
            for (int i = lane; i < D; i += 32) dst[i] = src[i];
            continue;
        }
        const bool is_q = head < nH;
        const bf16* norm = is_q ? q_norm : k_norm;
        float x1[PAIRS], x2[PAIRS];
        float ss = 0.f;
#pragma unroll
        for (int j = 0; j < PAIRS; j++) {
            x1[j] = f(src[lane + 32 * j]);
            x2[j] = f(src[lane + 32 * j + HALF]);
            ss += x1[j] * x1[j] + x2[j] * x2[j];
        }
        if (norm != nullptr) {  // Qwen3's per-head RMSNorm, rounded as transformers rounds it
            const float r = rsqrtf(warp_sum(ss) / D + eps);
#pragma unroll
            for (int j = 0; j < PAIRS; j++) {
                const int p = lane + 32 * j;
                x1[j] = round_bf16(round_bf16(x1[j] * r) * f(norm[p]));
                x2[j] = round_bf16(round_bf16(x2[j] * r) * f(norm[p + HALF]));
            }
        }
        bf16* dst = is_q ? q_out + ((size_t) t * nH + head) * D : k_cache + ((size_t) slot * nKv + (head - nH)) * D;
#pragma unroll
        for (int j = 0; j < PAIRS; j++) {
            const int p = lane + 32 * j;
            // x * cos + rotate_half(x) * sin, with rotate_half(x) = (-x2, x1); each product rounded
            dst[p] = b(round_bf16(x1[j] * f(cs[p])) + round_bf16(-x2[j] * f(sn[p])));
            dst[p + HALF] = b(round_bf16(x2[j] * f(cs[p + HALF])) + round_bf16(x1[j] * f(sn[p + HALF])));
        }
    }
}

}  // namespace

namespace rollout {
namespace kernels {

const char* rms_norm(const void* x, const void* delta, void* h_out, const void* w, void* out, int rows, int hidden,
                     float eps, cudaStream_t stream) {
    if (rows == 0) return nullptr;
    const int threads = hidden >= 1024 ? 1024 : ((hidden + 31) / 32) * 32;
    rms_norm_kernel<<<rows, threads, 0, stream>>>(static_cast<const bf16*>(x), static_cast<const bf16*>(delta),
                                                  static_cast<bf16*>(h_out), static_cast<const bf16*>(w),
                                                  static_cast<bf16*>(out), hidden, eps);
    return launch_error();
}

const char* silu_and_mul(const void* gate_up, void* out, int rows, int inter, cudaStream_t stream) {
    const size_t n = (size_t) rows * inter;
    if (n == 0) return nullptr;
    const int threads = 256;
    const int blocks = (int) ((n + threads - 1) / threads < 65535 ? (n + threads - 1) / threads : 65535);
    silu_and_mul_kernel<<<blocks, threads, 0, stream>>>(static_cast<const bf16*>(gate_up), static_cast<bf16*>(out), inter, n);
    return launch_error();
}

const char* rope_and_cache(const RopeArgs& a, cudaStream_t stream) {
    if (a.tokens == 0) return nullptr;
    const int threads = 256;
    cudaError_t launched;
#define ROLLOUT_ROPE(DIM)                                                                                              \
    launched = rollout::device::launch(                                                                                \
            rope_and_cache_kernel<DIM>, dim3(a.tokens), dim3(threads), 0, stream,                                      \
            static_cast<const bf16*>(a.qkv), static_cast<const long long*>(a.positions),                               \
            static_cast<const long long*>(a.slots), static_cast<const bf16*>(a.cos), static_cast<const bf16*>(a.sin),   \
            static_cast<const bf16*>(a.q_norm), static_cast<const bf16*>(a.k_norm), static_cast<bf16*>(a.q_out),      \
            static_cast<bf16*>(a.k_cache), static_cast<bf16*>(a.v_cache), a.num_heads, a.num_kv_heads, a.eps)
    switch (a.head_dim) {
        case 64: ROLLOUT_ROPE(64); break;
        case 128: ROLLOUT_ROPE(128); break;
        default: return "rope_and_cache: head_dim must be 64 or 128";
    }
#undef ROLLOUT_ROPE
    return launched != cudaSuccess ? cudaGetErrorString(launched) : nullptr;
}

}  // namespace kernels
}  // namespace rollout
