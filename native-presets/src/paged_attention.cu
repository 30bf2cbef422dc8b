// Decode attention straight from the paged KV cache (one query token per sequence), the kernel
// that lets a decode step read each sequence's K/V once and in place, with shapes that depend on
// the batch only, so that a step can be captured as a CUDA graph per batch size. ADR 0008 and
// its addendum (issue #20's rewrite).
//
// One thread block per (sequence, KV head, split) takes the KV head's g query heads over a chunk of
// the context. The host plans the grid (paged_decode_plan) from the batch, the context and how
// many blocks the card holds at once: when batch * KV heads would leave resident slots empty, a
// context is cut into chunks of at least MIN_CHUNK tokens to fill them; when the batch fills the
// card, only a context longer than LONG_CHUNK is cut, so that one long sequence does not keep a
// single block streaming while the rest of the card idles. Each sequence cuts its own context by
// the plan (chunk = max(len / splits, min_chunk), whole 64-token tiles), so a short context uses
// one block however many splits the grid has. A sequence that used one block is finished by it;
// otherwise each block leaves its partial softmax in the workspace and the last one to finish (a
// counter per (sequence, KV head)) merges them, in split order, and sets the counter back to 0.
// One kernel either way: no merge kernel.
//
// Inside a block, four warps take 16-token tiles in turn, each warp streaming its own tiles into
// shared memory with cp.async, three tiles in flight, so that the block has up to 12 tiles' K and
// V requested while it computes. The scores and p * V are tensor-core MMAs (m16n8k16, bf16 in,
// float32 accumulate): the g query heads are the rows of the A operand (g <= 8 of its 16; the rest
// are zeros), so one read of a K or V tile serves every head of the group. The softmax is online
// per warp (FlashAttention-2's rescaling, in the log2 domain), p goes to bf16 for the p * V MMA as
// in FlashAttention, and the four warps' states are combined through shared memory at the end.
//
// With partition_tokens > 0 the chunks are instead that many tokens at absolute positions, and
// every reduction's order depends only on the sequence's own length: the batch-invariant
// configuration of deterministic mode (ADR 0026).
//
// Layouts (row-major, bf16 unless said otherwise):
//   q           [B, nH, D]            query head h attends with KV head h / g (transformers' repeat_kv)
//   k/v cache   [slots, nKv, D]       slot = block * blockSize + offset
//   blockTable  [B, maxBlocks] int64  a sequence's blocks in order; entries past its length never read
//   seqLens     [B] int64             context length including the current token; 0 = padding row (zeros out)
//   partial m,l [B, nH, S] float32,  partial acc [B, nH, S, D] float32   (workspace, S = splits)
//   counters    [B, nKv] int32        zero before the launch, zero after it
//   out         [B, nH, D]
#include <algorithm>
#include <atomic>
#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math_constants.h>

#include "rollout_device.cuh"
#include "rollout_kernels.h"

namespace {

using bf16 = __nv_bfloat16;
using rollout::device::mma;

constexpr int WARPS = 4;
constexpr int THREADS = WARPS * 32;
constexpr int TILE = 16;                  // tokens a warp takes at a time: the k of one p * V MMA
constexpr int STAGES = 3;                 // tiles in flight per warp
constexpr int CTA_TOKENS = WARPS * TILE;  // chunks are whole multiples of this: a tile for every warp
constexpr int MIN_CHUNK = 256;            // the least context a split is given to fill the card
constexpr int LONG_CHUNK = 2048;          // contexts longer than this are split even when the batch fills it
constexpr int MERGE_SPLITS = 256;         // splits whose weights the merging block holds in shared memory at a time
constexpr int MAX_G = 8;                  // query heads per KV head: 7 for Qwen2.5, 2-4 for Qwen3 and Llama 3
constexpr int MAX_SPLITS = 65535;         // grid.z
constexpr unsigned FULL = 0xffffffffu;

// Shared memory of one block: per warp STAGES tiles of K then V, [TILE][D] each, 16-byte chunks
// swizzled (chunk c of row r at c ^ (r % 8)) so that ldmatrix's eight rows hit eight bank groups.
template <int D>
struct Smem {
    static constexpr int CHUNKS = D / 8;              // 16-byte chunks in a K or V row
    static constexpr int TILE_ELEMS = TILE * D;
    static constexpr int STAGE_ELEMS = 2 * TILE_ELEMS;
    static constexpr int WARP_ELEMS = STAGES * STAGE_ELEMS;
    static constexpr int BYTES = WARPS * WARP_ELEMS * 2;
    // the end's combine of the warps reuses it: m and l per warp and head, then acc
    static_assert(WARPS * MAX_G * (D + 2) * 4 <= BYTES, "the combine must fit in the tiles' memory");
    static_assert((MAX_G * MERGE_SPLITS + 2 * MAX_G) * 4 <= BYTES, "the merge's weights must fit in the tiles' memory");

    __device__ static int at(int row, int chunk) { return (row * CHUNKS + (chunk ^ (row & 7))) * 8; }
};

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool real) {
    // src-size 0 reads nothing and fills zeros: tokens past the chunk's end are zero K and V
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src), "r"(real ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* p) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* p) {
    const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(p));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s) : "memory");
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // lo in the low half: the lower column
    return *reinterpret_cast<const uint32_t*>(&v);
}

template <int D>
__global__ void __launch_bounds__(THREADS) decode_kernel(
        const bf16* __restrict__ q, const bf16* __restrict__ kc, const bf16* __restrict__ vc,
        const long long* __restrict__ block_table, const long long* __restrict__ seq_lens, float* __restrict__ part_m,
        float* __restrict__ part_l, float* __restrict__ part_acc, int* __restrict__ counters, bf16* __restrict__ out,
        int nH, int nKv, int block_size, int max_blocks, int splits, int min_chunk, int partition_tokens, float scale_log2) {
    using S = Smem<D>;
    // q and this token's K/V come from the kernel before (programmatic dependent launch, rollout_device.cuh)
    rollout::device::pdl_wait();
    extern __shared__ __align__(128) unsigned char smem[];
    __shared__ bool last;
    const int b = blockIdx.x, kvh = blockIdx.y, split = blockIdx.z;
    const int g = nH / nKv, tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gid = lane / 4, tig = lane % 4;
    const size_t first = (size_t) b * nH + (size_t) kvh * g;  // the group's first query head, as a row of [B * nH]

    // this sequence's chunks, the same in every block of (b, kvh): at most `splits`, whole tiles
    const int len = (int) max(0LL, min(seq_lens[b], (long long) max_blocks * block_size));
    int chunk = 1, used = 0;
    if (len > 0) {
        if (partition_tokens > 0) {
            chunk = partition_tokens;
        } else {
            chunk = max((len + splits - 1) / splits, min_chunk);
            chunk = (chunk + CTA_TOKENS - 1) / CTA_TOKENS * CTA_TOKENS;
        }
        used = (len + chunk - 1) / chunk;
    }
    if (used == 0) {  // a padding row: zeros, written by one block
        if (split == 0) {
            for (int i = tid; i < g * D; i += THREADS) out[first * D + i] = __float2bfloat16(0.f);
        }
        return;
    }
    if (split >= used) return;
    const int start = split * chunk, end = min(len, start + chunk);

    // the A operand of the scores: query head gid of the group in rows 0..7, rows 8..15 zero
    uint32_t qa[D / 16][2];
    {
        const bool real = gid < g;
        const uint32_t* qrow = reinterpret_cast<const uint32_t*>(q + (first + (real ? gid : 0)) * D);
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            qa[kk][0] = real ? qrow[8 * kk + tig] : 0u;      // dims 16kk + 2tig, +1
            qa[kk][1] = real ? qrow[8 * kk + 4 + tig] : 0u;  // dims 16kk + 8 + 2tig, +1
        }
    }

    // this warp's tiles of the chunk: warp, warp + WARPS, ...
    const int tiles = (end - start + TILE - 1) / TILE;
    const int mine = tiles > warp ? (tiles - warp + WARPS - 1) / WARPS : 0;
    const long long* table = block_table + (size_t) b * max_blocks;
    bf16* wsm = reinterpret_cast<bf16*>(smem) + warp * S::WARP_ELEMS;

    auto tile_start = [&](int i) { return start + (warp + i * WARPS) * TILE; };
    auto load = [&](int i) {  // the warp's i-th tile into stage i % STAGES
        const int t0 = tile_start(i);
        long long slot = 0;   // lane r < TILE: token t0 + r's KV slot
        bool real = false;
        if (lane < TILE) {
            const int pos = t0 + lane;
            real = pos < end;
            if (real) slot = table[pos / block_size] * block_size + pos % block_size;
        }
        bf16* ks = wsm + (i % STAGES) * S::STAGE_ELEMS;
        bf16* vs = ks + S::TILE_ELEMS;
#pragma unroll
        for (int it = 0; it < TILE * S::CHUNKS / 32; it++) {
            const int idx = it * 32 + lane, r = idx / S::CHUNKS, c = idx % S::CHUNKS;
            const long long rslot = __shfl_sync(FULL, slot, r);
            const bool rreal = __shfl_sync(FULL, (int) real, r) != 0;
            const size_t off = rreal ? ((size_t) rslot * nKv + kvh) * D + c * 8 : 0;
            cp_async16(ks + S::at(r, c), kc + off, rreal);
            cp_async16(vs + S::at(r, c), vc + off, rreal);
        }
    };

    float m = -CUDART_INF_F;  // row gid's running max, log2 domain (quad-uniform)
    float l = 0.f;            // this lane's share of row gid's sum of p
    float acc[D / 8][4];      // row gid's p * V over dims 8nt + 2tig, +1 (entries 2, 3: the zero rows)
#pragma unroll
    for (int nt = 0; nt < D / 8; nt++) {
#pragma unroll
        for (int e = 0; e < 4; e++) acc[nt][e] = 0.f;
    }

#pragma unroll
    for (int i = 0; i < STAGES - 1; i++) {
        if (i < mine) load(i);
        cp_async_commit();  // empty groups too, so that group i is always tile i
    }
    for (int i = 0; i < mine; i++) {
        if (i + STAGES - 1 < mine) load(i + STAGES - 1);
        cp_async_commit();
        cp_async_wait<STAGES - 1>();  // tile i's group is complete
        __syncwarp();
        const bf16* ks = wsm + (i % STAGES) * S::STAGE_ELEMS;
        const bf16* vs = ks + S::TILE_ELEMS;
        const int real = min(TILE, end - tile_start(i));

        // scores [16 heads x 16 tokens] = Q K^T, as two n-tiles of 8 tokens
        float s[2][4] = {};
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t kb[4];  // n-tile 0's b, then n-tile 1's: matrices (tokens 0-7 | 8-15) x (dims lo | hi)
            ldmatrix_x4(kb, ks + S::at((lane / 16) * 8 + lane % 8, 2 * kk + (lane / 8) % 2));
            const uint32_t a[4] = {qa[kk][0], 0u, qa[kk][1], 0u};
            mma(s[0], a, kb[0], kb[1]);
            mma(s[1], a, kb[2], kb[3]);
        }

        // online softmax of row gid over the tile's real tokens (its four lanes hold 4 tokens each)
        float x[2][2], tmax = -CUDART_INF_F;
#pragma unroll
        for (int j = 0; j < 2; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                x[j][e] = 8 * j + 2 * tig + e < real ? s[j][e] * scale_log2 : -CUDART_INF_F;
                tmax = fmaxf(tmax, x[j][e]);
            }
        }
        tmax = fmaxf(tmax, __shfl_xor_sync(FULL, tmax, 1));
        tmax = fmaxf(tmax, __shfl_xor_sync(FULL, tmax, 2));
        const float mnew = fmaxf(m, tmax);    // finite: every tile has a real token
        const float alpha = exp2f(m - mnew);  // 0 on the first tile
        float p[2][2];
        l *= alpha;
#pragma unroll
        for (int j = 0; j < 2; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                p[j][e] = exp2f(x[j][e] - mnew);
                l += p[j][e];
            }
        }
        m = mnew;
#pragma unroll
        for (int nt = 0; nt < D / 8; nt++) {
            acc[nt][0] *= alpha;
            acc[nt][1] *= alpha;
        }

        // acc [16 heads x D] += P [16 x 16 tokens] V [16 tokens x D]; P's A fragment is the scores'
        // C fragments of the two n-tiles side by side
        const uint32_t pa[4] = {pack_bf16(p[0][0], p[0][1]), 0u, pack_bf16(p[1][0], p[1][1]), 0u};
#pragma unroll
        for (int cc = 0; cc < D / 16; cc++) {
            uint32_t vb[4];  // transposed: matrices (tokens 0-7 | 8-15) x (dims 16cc..+7 | 16cc+8..+15)
            ldmatrix_x4_trans(vb, vs + S::at(((lane / 8) % 2) * 8 + lane % 8, 2 * cc + lane / 16));
            mma(acc[2 * cc], pa, vb[0], vb[1]);
            mma(acc[2 * cc + 1], pa, vb[2], vb[3]);
        }
        __syncwarp();  // every lane is done with the stage before the next iteration refills it
    }
    cp_async_wait<0>();

    rollout::device::pdl_launch_dependents();   // past the K/V reads: the next kernel may queue its blocks
    // combine the warps: m, l and acc of each through shared memory
    l += __shfl_xor_sync(FULL, l, 1);
    l += __shfl_xor_sync(FULL, l, 2);
    __syncthreads();  // every warp is done with its tiles: their memory is the combine's now
    float* cm = reinterpret_cast<float*>(smem);  // [WARPS][MAX_G]
    float* cl = cm + WARPS * MAX_G;              // [WARPS][MAX_G]
    float* co = cl + WARPS * MAX_G;              // [WARPS][MAX_G][D]
    if (tig == 0) {
        cm[warp * MAX_G + gid] = m;
        cl[warp * MAX_G + gid] = l;
    }
#pragma unroll
    for (int nt = 0; nt < D / 8; nt++) {
        co[(warp * MAX_G + gid) * D + 8 * nt + 2 * tig] = acc[nt][0];
        co[(warp * MAX_G + gid) * D + 8 * nt + 2 * tig + 1] = acc[nt][1];
    }
    __syncthreads();
    for (int i = tid; i < g * D; i += THREADS) {
        const int h = i / D, d = i % D;
        float mx = -CUDART_INF_F;
#pragma unroll
        for (int w = 0; w < WARPS; w++) mx = fmaxf(mx, cm[w * MAX_G + h]);  // finite: warp 0 had a tile
        float sum = 0.f, a = 0.f;
#pragma unroll
        for (int w = 0; w < WARPS; w++) {
            const float c = exp2f(cm[w * MAX_G + h] - mx);  // 0 for a warp without tiles
            sum += cl[w * MAX_G + h] * c;
            a += co[(w * MAX_G + h) * D + d] * c;
        }
        if (used == 1) {
            out[(first + h) * D + d] = __float2bfloat16(a / sum);
        } else {
            part_acc[((first + h) * splits + split) * D + d] = a;
            if (d == 0) {
                part_m[(first + h) * splits + split] = mx;
                part_l[(first + h) * splits + split] = sum;
            }
        }
    }
    if (used == 1) return;

    // the last block of (b, kvh) to get here merges the splits (threadfence reduction)
    __threadfence();
    __syncthreads();
    if (tid == 0) {
        int* counter = counters + (size_t) b * nKv + kvh;
        last = atomicAdd(counter, 1) == used - 1;
        if (last) *counter = 0;  // every split has counted: ready for the next launch
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    // each head's max and sum over the splits, a warp per head; then the splits' weights
    // exp2(m - max) / sum in shared memory, MERGE_SPLITS at a time, and every output a dot product
    // of its column of partial accumulators with them
    float* wt = reinterpret_cast<float*>(smem);  // [MAX_G][MERGE_SPLITS]
    float* hm = wt + MAX_G * MERGE_SPLITS;       // [MAX_G] each head's max
    float* hl = hm + MAX_G;                      // [MAX_G] each head's 1 / sum
    for (int h = warp; h < g; h += WARPS) {
        const float* pm = part_m + (first + h) * splits;
        const float* pl = part_l + (first + h) * splits;
        float mx = -CUDART_INF_F;
        for (int sp = lane; sp < used; sp += 32) mx = fmaxf(mx, __ldcg(pm + sp));
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, o));
        float sum = 0.f;
        for (int sp = lane; sp < used; sp += 32) sum += __ldcg(pl + sp) * exp2f(__ldcg(pm + sp) - mx);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(FULL, sum, o);
        if (lane == 0) {
            hm[h] = mx;
            hl[h] = 1.f / sum;  // sum >= 1: the split holding the max has a p of 1 there
        }
    }
    float a[(MAX_G * 128 + THREADS - 1) / THREADS] = {};  // this thread's outputs i = tid + k * THREADS
    for (int s0 = 0; s0 < used; s0 += MERGE_SPLITS) {
        const int n = min(MERGE_SPLITS, used - s0);
        __syncthreads();  // the maxima are in (first pass), or the last weights are used (later passes)
        for (int i = tid; i < g * n; i += THREADS) {
            const int h = i / n, sp = i % n;
            wt[h * MERGE_SPLITS + sp] = exp2f(__ldcg(part_m + (first + h) * splits + s0 + sp) - hm[h]) * hl[h];
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < (MAX_G * 128 + THREADS - 1) / THREADS; k++) {
            const int i = tid + k * THREADS;
            if (i < g * D) {
                const int h = i / D, d = i % D;
                const float* pa = part_acc + ((first + h) * splits + s0) * D + d;
                const float* w = wt + h * MERGE_SPLITS;
                float x = 0.f;
#pragma unroll 8
                for (int sp = 0; sp < n; sp++) x += __ldcg(pa + (size_t) sp * D) * w[sp];
                a[k] += x;
            }
        }
    }
#pragma unroll
    for (int k = 0; k < (MAX_G * 128 + THREADS - 1) / THREADS; k++) {
        const int i = tid + k * THREADS;
        if (i < g * D) out[(first + i / D) * D + i % D] = __float2bfloat16(a[k]);
    }
}

// The device this thread launches on, or -1 (past 64 devices, or no device: nothing is cached).
int device_index() {
    int dev = -1;
    return cudaGetDevice(&dev) == cudaSuccess && dev >= 0 && dev < 64 ? dev : -1;
}

// 48 KB of dynamic shared memory at D 64, 96 KB at D 128, which with the static `last` passes
// the 48 KB a block gets without opting in: a per-device attribute, set once per device.
template <int D>
cudaError_t opt_in() {
    static std::atomic<bool> done[64];
    const int dev = device_index();
    if (dev >= 0 && done[dev].load(std::memory_order_acquire)) return cudaSuccess;
    const cudaError_t e = cudaFuncSetAttribute(decode_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, Smem<D>::BYTES);
    if (e == cudaSuccess && dev >= 0) done[dev].store(true, std::memory_order_release);
    return e;
}

// How many of the kernel's blocks the card holds at once (SMs times blocks per SM), asked once
// per device; 0 if the runtime cannot say.
template <int D>
int resident_blocks() {
    static std::atomic<int> cached[64];
    const int dev = device_index();
    if (dev >= 0) {
        const int known = cached[dev].load(std::memory_order_relaxed);
        if (known > 0) return known;
    }
    int sms = 0, per_sm = 0;
    if (dev < 0 || opt_in<D>() != cudaSuccess || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess
        || cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, decode_kernel<D>, THREADS, Smem<D>::BYTES) != cudaSuccess)
        return 0;
    const int blocks = sms * per_sm;
    if (blocks > 0) cached[dev].store(blocks, std::memory_order_relaxed);
    return blocks;
}

template <int D>
cudaError_t launch(const rollout::kernels::PagedDecodeArgs& a, cudaStream_t stream) {
    const cudaError_t e = opt_in<D>();
    if (e != cudaSuccess) return e;
    constexpr float LOG2E = 1.4426950408889634f;
    dim3 grid(a.batch, a.num_kv_heads, a.splits);
    const cudaError_t launched = rollout::device::launch(
            decode_kernel<D>, grid, dim3(THREADS), Smem<D>::BYTES, stream,
            static_cast<const bf16*>(a.q), static_cast<const bf16*>(a.k_cache), static_cast<const bf16*>(a.v_cache),
            static_cast<const long long*>(a.block_table), static_cast<const long long*>(a.seq_lens),
            static_cast<float*>(a.part_m), static_cast<float*>(a.part_l), static_cast<float*>(a.part_acc),
            static_cast<int*>(a.counters), static_cast<bf16*>(a.out), a.num_heads, a.num_kv_heads, a.block_size,
            a.max_blocks, a.splits, a.min_chunk, a.partition_tokens, a.scale * LOG2E);
    return launched;
}

}  // namespace

namespace rollout {
namespace kernels {

PagedDecodePlan paged_decode_plan(int batch, int num_kv_heads, int head_dim, int max_blocks, int block_size,
                                  int partition_tokens) {
    const long long ctx = (long long) max_blocks * block_size;
    if (batch <= 0 || num_kv_heads <= 0 || ctx <= 0) return {1, MIN_CHUNK};
    if (partition_tokens > 0) return {(int) std::min((ctx + partition_tokens - 1) / partition_tokens, 1LL << 30), 0};
    const int resident = head_dim == 128 ? resident_blocks<128>() : resident_blocks<64>();
    const long long blocks = (long long) batch * num_kv_heads;
    const long long fill = std::max(1LL, (resident > 0 ? resident : 264) / blocks);  // whole waves only
    long long splits, min_chunk;
    if (fill > 1) {  // a small batch: split to fill the card, chunks of MIN_CHUNK at the least
        splits = std::min(fill, (ctx + MIN_CHUNK - 1) / MIN_CHUNK);
        min_chunk = MIN_CHUNK;
    } else {         // the batch fills the card: split only the contexts longer than LONG_CHUNK
        splits = (ctx + LONG_CHUNK - 1) / LONG_CHUNK;
        min_chunk = LONG_CHUNK;
    }
    return {(int) std::max(1LL, std::min(splits, (long long) MAX_SPLITS)), (int) min_chunk};
}

const char* paged_decode_attention(const PagedDecodeArgs& a, cudaStream_t stream) {
    if (a.num_kv_heads <= 0 || a.num_heads % a.num_kv_heads != 0 || a.num_heads / a.num_kv_heads > MAX_G)
        return "paged decode attention: query heads per KV head must be 1..8";
    if (a.splits < 1 || a.splits > MAX_SPLITS) return "paged decode attention: splits must be 1..65535";
    if (a.partition_tokens < 0) return "paged decode attention: partition_tokens must be 0 or positive";
    if (a.partition_tokens > 0 && (long long) a.splits * a.partition_tokens < (long long) a.max_blocks * a.block_size)
        return "paged decode attention: splits * partition_tokens must cover the block table's context";
    if (a.partition_tokens == 0 && a.min_chunk <= 0) return "paged decode attention: min_chunk must be positive";
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
