// Decode attention straight from the paged KV cache (one query token per sequence), the kernel
// that lets a decode step read each sequence's K/V once and in place, with shapes that depend on
// the batch only, so that a step can be captured as a CUDA graph per batch size.
//
// Flash-decoding: the context of each (sequence, KV head) is cut into partitions of PARTITION
// tokens; one thread block per (sequence, KV head, partition) computes the attention of the KV
// head's g query heads over its partition, and a second kernel merges the partitions. The grid is
// sized by the largest context the block table can hold, so it stays the same from step to step;
// partitions past a sequence's length exit at once.
//
// Inside a block the work is spread over tokens, not looped over them: every thread scores one
// token against the g query heads (its K row read with 16-byte loads), one warp per head takes the
// softmax of the partition, and then each thread sums p * V over 4 dimensions of every 16th (D 64)
// or 8th (D 128) token, each V read an 8-byte load that serves all g heads. (A first version gave
// each warp one token at a time, with a warp reduction per head per token: latency-bound. On an
// H200 the rewrite took a graphed 0.5B decode step from 4.40 to 1.86 ms at batch 1, 12.8 to 7.0 ms
// at 512. Its p * V read V two bytes a thread, 64 loads a thread in rounds of four: at batch 512
// the kernel moved 37% of the H100's bandwidth (KernelBench); now 16 loads of 8 bytes, in rounds
// of eight, at four blocks an SM.)
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

constexpr int THREADS = 256;
constexpr int WARPS = THREADS / 32;
constexpr int MAX_G = 8;          // query heads per KV head: 7 for Qwen2.5, 2-4 for Qwen3 and Llama 3
constexpr int PARTITION = 256;    // context tokens per thread block: one per thread when scoring

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

template <int D>
__global__ void __launch_bounds__(THREADS, 4) partition_kernel(
        const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ kc, const __nv_bfloat16* __restrict__ vc,
        const long long* __restrict__ block_table, const long long* __restrict__ seq_lens, float* __restrict__ part_m,
        float* __restrict__ part_l, float* __restrict__ part_acc, int nH, int nKv, int block_size, int max_blocks,
        int partitions, float scale) {
    constexpr int VEC = 4;                  // bf16 values in one 8-byte load (16-byte ones need 100 registers)
    constexpr int TPR = D / VEC;            // threads that read one V row together: 16 for D 64, 32 for D 128
    constexpr int ROWS = THREADS / TPR;     // V rows (tokens) read at once by the block: 16 for D 64, 8 for D 128
    const int b = blockIdx.x, kvh = blockIdx.y, part = blockIdx.z;
    const int g = nH / nKv, tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int start = part * PARTITION, n = min((int) seq_lens[b], start + PARTITION) - start;
    const size_t first = (size_t) b * nH + kvh * g;  // the group's first query head, as a row of [B * nH]

    if (n <= 0) {  // past the sequence's end (or a padding row): nothing to add, and the merge must see so
        for (int i = tid; i < g * D; i += THREADS) part_acc[((first + i / D) * partitions + part) * D + i % D] = 0.f;
        if (tid < g) {
            part_m[(first + tid) * partitions + part] = -CUDART_INF_F;
            part_l[(first + tid) * partitions + part] = 0.f;
        }
        return;
    }

    __shared__ float sq[MAX_G][D];              // the group's queries, scaled
    __shared__ float sp[MAX_G][PARTITION];      // scores, then probabilities
    __shared__ long long sslot[PARTITION];      // each token's KV slot
    __shared__ float sacc[WARPS][MAX_G][D];     // p * V per warp, before the warps are summed

    for (int i = tid; i < g * D; i += THREADS) sq[i / D][i % D] = __bfloat162float(q[first * D + i]) * scale;
    for (int t = tid; t < n; t += THREADS) {
        const int pos = start + t;
        sslot[t] = block_table[(size_t) b * max_blocks + pos / block_size] * block_size + pos % block_size;
    }
    __syncthreads();

    // 1. scores: thread t takes token t against every query head of the group
    if (tid < n) {
        const uint4* krow = reinterpret_cast<const uint4*>(kc + ((size_t) sslot[tid] * nKv + kvh) * D);
        float s[MAX_G];
#pragma unroll
        for (int h = 0; h < MAX_G; h++) s[h] = 0.f;
#pragma unroll
        for (int c = 0; c < D / 8; c++) {
            const uint4 raw = krow[c];
            const __nv_bfloat162* k2 = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float2 k = __bfloat1622float2(k2[j]);
#pragma unroll
                for (int h = 0; h < MAX_G; h++) {
                    if (h < g) s[h] += k.x * sq[h][c * 8 + 2 * j] + k.y * sq[h][c * 8 + 2 * j + 1];
                }
            }
        }
#pragma unroll
        for (int h = 0; h < MAX_G; h++) {
            if (h < g) sp[h][tid] = s[h];
        }
    }
    __syncthreads();

    // 2. softmax over the partition, one warp per head: probabilities unnormalised, with their max and sum
    for (int h = warp; h < g; h += WARPS) {
        float mx = -CUDART_INF_F;
        for (int t = lane; t < n; t += 32) mx = fmaxf(mx, sp[h][t]);
        mx = warp_max(mx);
        float sum = 0.f;
        for (int t = lane; t < n; t += 32) {
            const float p = __expf(sp[h][t] - mx);
            sp[h][t] = p;
            sum += p;
        }
        sum = warp_sum(sum);
        if (lane == 0) {
            part_m[(first + h) * partitions + part] = mx;
            part_l[(first + h) * partitions + part] = sum;
        }
    }
    __syncthreads();

    // 3. p * V: each thread owns VEC consecutive dimensions of every ROWS-th token, read as one
    //    8-byte load (a V row is TPR threads), and sums them for all g heads at once; the rows of a
    //    warp are then added with shuffles, and the warps' sums through shared memory
    const int row = tid / TPR, c = tid % TPR;
    float a[MAX_G][VEC];
#pragma unroll
    for (int h = 0; h < MAX_G; h++) {
#pragma unroll
        for (int j = 0; j < VEC; j++) a[h][j] = 0.f;
    }
#pragma unroll 8
    for (int t = row; t < n; t += ROWS) {
        const uint2 raw = *reinterpret_cast<const uint2*>(vc + ((size_t) sslot[t] * nKv + kvh) * D + c * VEC);
        const __nv_bfloat162* v2 = reinterpret_cast<const __nv_bfloat162*>(&raw);
        float v[VEC];
#pragma unroll
        for (int j = 0; j < VEC / 2; j++) {
            const float2 f = __bfloat1622float2(v2[j]);
            v[2 * j] = f.x;
            v[2 * j + 1] = f.y;
        }
#pragma unroll
        for (int h = 0; h < MAX_G; h++) {
            if (h < g) {
                const float p = sp[h][t];
#pragma unroll
                for (int j = 0; j < VEC; j++) a[h][j] += p * v[j];
            }
        }
    }
    // lanes l, l + TPR, ... of a warp hold the same dimensions of different rows (D 64: two rows a
    // warp; D 128: a row is the whole warp, nothing to add)
#pragma unroll
    for (int h = 0; h < MAX_G; h++) {
        if (h < g) {
#pragma unroll
            for (int j = 0; j < VEC; j++) {
#pragma unroll
                for (int o = TPR; o < 32; o <<= 1) a[h][j] += __shfl_xor_sync(0xffffffffu, a[h][j], o);
            }
        }
    }
    if (lane < TPR) {
#pragma unroll
        for (int h = 0; h < MAX_G; h++) {
            if (h < g) {
#pragma unroll
                for (int j = 0; j < VEC; j++) sacc[warp][h][c * VEC + j] = a[h][j];
            }
        }
    }
    __syncthreads();
    for (int i = tid; i < g * D; i += THREADS) {
        const int h = i / D, dd = i % D;
        float total = 0.f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) total += sacc[w][h][dd];
        part_acc[((first + h) * partitions + part) * D + dd] = total;
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
    partition_kernel<D><<<grid, THREADS, 0, stream>>>(
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
