// Decode attention straight from the paged KV cache (one query token per sequence), the kernel
// that lets a decode step read each sequence's K/V once and in place, with shapes that depend on
// the batch only, so that a step can be captured as a CUDA graph per batch size.
//
// Flash-decoding: the context of each (sequence, KV head) is cut into partitions of PARTITION
// tokens; one thread block per (sequence, KV head, partition) computes the attention of the KV
// head's g query heads over its partition with an online softmax, and a second kernel merges the
// partitions. The grid is sized by the largest context the block table can hold, so it stays the
// same from step to step; partitions past a sequence's length exit at once.
//
// Layouts (row-major, bf16 unless said otherwise):
//   q           [B, nH, D]            query head h attends with KV head h / g (transformers' repeat_kv)
//   k/v cache   [slots, nKv, D]       slot = block * blockSize + offset
//   blockTable  [B, maxBlocks] int64  a sequence's blocks in order; unused entries are never read
//   seqLens     [B] int64             context length including the current token; 0 = padding row
//   partial m,l [B, nH, P] float32,  partial acc [B, nH, P, D] float32   (workspace, P = partitions)
//   out         [B, nH, D]
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math_constants.h>

#include "rollout_kernels.h"

namespace {

constexpr int WARPS = 4;
constexpr int MAX_G = 8;          // query heads per KV head: 7 for Qwen2.5, 2-4 for Qwen3 and Llama 3
constexpr int PARTITION = 512;    // context tokens per thread block

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

template <int D>
__global__ void __launch_bounds__(WARPS * 32) partition_kernel(
        const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ kc, const __nv_bfloat16* __restrict__ vc,
        const long long* __restrict__ block_table, const long long* __restrict__ seq_lens, float* __restrict__ part_m,
        float* __restrict__ part_l, float* __restrict__ part_acc, int nH, int nKv, int block_size, int max_blocks,
        int partitions, float scale) {
    constexpr int PER_LANE = D / 32;  // each lane owns PER_LANE consecutive dims of a head
    const int b = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    const int g = nH / nKv;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int len = (int) seq_lens[b];
    const int start = part * PARTITION, end = min(len, start + PARTITION);

    __shared__ float sm_m[WARPS][MAX_G], sm_l[WARPS][MAX_G];
    __shared__ float sm_acc[WARPS][MAX_G][D];

    float qr[MAX_G][PER_LANE], acc[MAX_G][PER_LANE], m[MAX_G], l[MAX_G];
#pragma unroll
    for (int h = 0; h < MAX_G; h++) {
        m[h] = -CUDART_INF_F;
        l[h] = 0.f;
#pragma unroll
        for (int i = 0; i < PER_LANE; i++) {
            acc[h][i] = 0.f;
            qr[h][i] = h < g ? __bfloat162float(q[((size_t) b * nH + kvh * g + h) * D + lane * PER_LANE + i]) * scale : 0.f;
        }
    }

    for (int t = start + warp; t < end; t += WARPS) {
        const long long slot = block_table[(size_t) b * max_blocks + t / block_size] * block_size + t % block_size;
        const size_t row = ((size_t) slot * nKv + kvh) * D + lane * PER_LANE;
        float k[PER_LANE], v[PER_LANE];
#pragma unroll
        for (int i = 0; i < PER_LANE; i++) {
            k[i] = __bfloat162float(kc[row + i]);
            v[i] = __bfloat162float(vc[row + i]);
        }
#pragma unroll
        for (int h = 0; h < MAX_G; h++) {
            if (h >= g) break;
            float s = 0.f;
#pragma unroll
            for (int i = 0; i < PER_LANE; i++) s += qr[h][i] * k[i];
            s = warp_sum(s);
            const float m_new = fmaxf(m[h], s);
            const float corr = __expf(m[h] - m_new), p = __expf(s - m_new);
            l[h] = l[h] * corr + p;
#pragma unroll
            for (int i = 0; i < PER_LANE; i++) acc[h][i] = acc[h][i] * corr + p * v[i];
            m[h] = m_new;
        }
    }

    // merge the warps of this block
#pragma unroll
    for (int h = 0; h < MAX_G; h++) {
        if (h >= g) break;
        if (lane == 0) {
            sm_m[warp][h] = m[h];
            sm_l[warp][h] = l[h];
        }
#pragma unroll
        for (int i = 0; i < PER_LANE; i++) sm_acc[warp][h][lane * PER_LANE + i] = acc[h][i];
    }
    __syncthreads();
    for (int idx = threadIdx.x; idx < g * D; idx += WARPS * 32) {
        const int h = idx / D, d = idx % D;
        float mx = -CUDART_INF_F;
        for (int w = 0; w < WARPS; w++) mx = fmaxf(mx, sm_m[w][h]);
        float lsum = 0.f, a = 0.f;
        if (mx > -CUDART_INF_F) {
            for (int w = 0; w < WARPS; w++) {
                const float c = __expf(sm_m[w][h] - mx);  // a warp that saw no token has m = -inf: c = 0
                lsum += sm_l[w][h] * c;
                a += sm_acc[w][h][d] * c;
            }
        }
        const size_t p = ((size_t) b * nH + kvh * g + h) * partitions + part;
        part_acc[p * D + d] = a;
        if (d == 0) {
            part_m[p] = mx;
            part_l[p] = lsum;
        }
    }
}

template <int D>
__global__ void merge_kernel(const float* __restrict__ part_m, const float* __restrict__ part_l,
                             const float* __restrict__ part_acc, __nv_bfloat16* __restrict__ out, int partitions) {
    const int bh = blockIdx.x;  // b * nH + head
    const float* pm = part_m + (size_t) bh * partitions;
    const float* pl = part_l + (size_t) bh * partitions;
    float mx = -CUDART_INF_F;
    for (int p = 0; p < partitions; p++) mx = fmaxf(mx, pm[p]);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float lsum = 0.f, a = 0.f;
        if (mx > -CUDART_INF_F) {
            for (int p = 0; p < partitions; p++) {
                const float c = __expf(pm[p] - mx);
                lsum += pl[p] * c;
                a += part_acc[((size_t) bh * partitions + p) * D + d] * c;
            }
        }
        out[(size_t) bh * D + d] = __float2bfloat16(lsum > 0.f ? a / lsum : 0.f);  // padding rows get zeros
    }
}

template <int D>
cudaError_t launch(const rollout::kernels::PagedDecodeArgs& a, cudaStream_t stream) {
    const int partitions = rollout::kernels::paged_decode_partitions(a.max_blocks, a.block_size);
    dim3 grid(a.batch, a.num_kv_heads, partitions);
    partition_kernel<D><<<grid, WARPS * 32, 0, stream>>>(
            static_cast<const __nv_bfloat16*>(a.q), static_cast<const __nv_bfloat16*>(a.k_cache),
            static_cast<const __nv_bfloat16*>(a.v_cache), static_cast<const long long*>(a.block_table),
            static_cast<const long long*>(a.seq_lens), static_cast<float*>(a.part_m), static_cast<float*>(a.part_l),
            static_cast<float*>(a.part_acc), a.num_heads, a.num_kv_heads, a.block_size, a.max_blocks, partitions, a.scale);
    merge_kernel<D><<<a.batch * a.num_heads, D, 0, stream>>>(
            static_cast<const float*>(a.part_m), static_cast<const float*>(a.part_l), static_cast<const float*>(a.part_acc),
            static_cast<__nv_bfloat16*>(a.out), partitions);
    return cudaGetLastError();
}

}  // namespace

namespace rollout {
namespace kernels {

int paged_decode_partitions(int max_blocks, int block_size) {
    return (max_blocks * block_size + PARTITION - 1) / PARTITION;
}

const char* paged_decode_attention(const PagedDecodeArgs& a, cudaStream_t stream) {
    if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0 || a.num_heads / a.num_kv_heads > MAX_G)
        return "paged decode attention: query heads per KV head must be 1..8";
    if (a.batch == 0) return nullptr;
    cudaError_t e;
    switch (a.head_dim) {
        case 64: e = launch<64>(a, stream); break;
        case 128: e = launch<128>(a, stream); break;
        default: return "paged decode attention: head_dim must be 64 or 128";
    }
    return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace kernels
}  // namespace rollout
