// A dense layer's projections at decode's few rows (1 to 8 tokens), as matrix-vector products
// that read each weight once, with the small ops on either side fused in (issue #20: at batch 1
// a layer was ten kernels of 3 to 10 µs, cuBLAS's GEMMs 24 of its 42 µs, its split-K down
// projection at a quarter of the bandwidth):
//
//   store      out [M, N] = bf16(xn W^T (+ bias))                   the q/k/v projection
//   residual   out [M, N] = bf16(out + bf16(x W^T))  (in place)      o and down: the residual add
//   silu_mul   out [M, I] = bf16(bf16(silu(g)) * u), g|u = bf16(xn W^T) split at I = N / 2   gate-up
//
// x [M, K] bf16; xn is x itself, or with norm_w [K] its RMSNorm, computed here as rms_norm rounds
// it (bf16(bf16(x * rsqrt(mean(x^2) + eps)) * norm_w)), so the norm needs no kernel of its own.
// The roundings are those of the unfused ops (fused_ops.cu, cuBLAS's bf16 output): the results
// differ from theirs only by the order of float32 sums.
//
// A warp dots kRows weight rows with every x row: each 16-byte load of x serves four rows, each
// of W all M x rows. The warps of a block split K when the rows alone would not put enough loads
// in flight (0.5B's down projection: 896 rows of 4,864). Each output's sum runs in a fixed order
// (lane, then warp, then split): the same bits whatever M or the other rows are.
#include <cuda_bf16.h>
#include <cstdlib>
#include <cuda_runtime.h>

#include "rollout_device.cuh"
#include "rollout_kernels.h"

namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kRows = 4;        // weight rows per warp; silu_mul: two gate rows and their two up rows
constexpr int kMaxSplits = 8;   // warps along K per group of rows: at most the block's

using rollout::device::f;
using rollout::device::pdl_launch_dependents;
using rollout::device::pdl_wait;
using rollout::device::round_bf16;
using rollout::device::warp_sum;

// 16 bytes of weights, each read once: past L1, which keeps x's rows for the other warps.
__device__ __forceinline__ uint4 load_weights(const uint4* p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

__device__ __forceinline__ void unpack8(const uint4& v, float (&o)[8]) {
    const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 t = __bfloat1622float2(p[i]);
        o[2 * i] = t.x;
        o[2 * i + 1] = t.y;
    }
}

__device__ __forceinline__ uint4 pack8(const float (&v)[8]) {
    uint4 out;
    __nv_bfloat162* p = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
    for (int i = 0; i < 4; i++) p[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
    return out;
}

// x's M rows RMSNorm'd into shared memory (row m at normed[m * stride]), rounded as rms_norm
// rounds them: bf16(bf16(x * rsqrt(mean(x^2) + eps)) * norm_w). Every thread of the block takes part;
// the block waits for the result.
template <int M, int THREADS>
__device__ __forceinline__ void rms_norm_rows(const uint4* xs, const bf16* norm_w, uint4* normed, int vecs, int stride,
                                              int k, float eps) {
    __shared__ float squares[THREADS / 32][M];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    float ss[M] = {};
    for (int v = threadIdx.x; v < vecs; v += THREADS)
#pragma unroll
        for (int m = 0; m < M; m++) {
            float e[8];
            unpack8(__ldg(xs + (size_t) m * vecs + v), e);
#pragma unroll
            for (int j = 0; j < 8; j++) ss[m] = fmaf(e[j], e[j], ss[m]);
        }
#pragma unroll
    for (int m = 0; m < M; m++) {
        const float s = warp_sum(ss[m]);
        if (lane == 0) squares[warp][m] = s;
    }
    __syncthreads();
    float inv[M];
#pragma unroll
    for (int m = 0; m < M; m++) {
        float s = 0.f;
#pragma unroll
        for (int i = 0; i < THREADS / 32; i++) s += squares[i][m];
        inv[m] = rsqrtf(s / k + eps);
    }
    for (int v = threadIdx.x; v < vecs; v += THREADS) {
        float g[8];
        unpack8(__ldg(reinterpret_cast<const uint4*>(norm_w) + v), g);
#pragma unroll
        for (int m = 0; m < M; m++) {
            float e[8];
            unpack8(__ldg(xs + (size_t) m * vecs + v), e);
#pragma unroll
            for (int j = 0; j < 8; j++) e[j] = round_bf16(e[j] * inv[m]) * g[j];
            normed[(size_t) m * stride + v] = pack8(e);
        }
    }
    __syncthreads();
}

enum Epilogue { kStore = 0, kResidual = 1, kSiluMul = 2 };

// Grid: one block per kWarps / splits groups of rows; a group's `splits` warps take consecutive
// slices of K. NORM: the block first norms x into shared memory (M * K bf16), each block for
// itself (at 0.5B's hidden size 1.8 KB a row, against 7 to 70 KB of weights the block reads).
template <int M, int EPI, bool NORM>
__global__ void __launch_bounds__(kThreads, 2) dense_gemv_kernel(
        const bf16* __restrict__ x, const bf16* __restrict__ norm_w, const bf16* __restrict__ w,
        const bf16* __restrict__ bias, bf16* __restrict__ out, int n, int k, int splits, float eps, bool prefetch_all) {
    extern __shared__ __align__(16) unsigned char normed_raw[];
    __shared__ float partial[kWarps][kRows][M];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int group = blockIdx.x * (kWarps / splits) + warp / splits, split = warp % splits;
    const int inter = n / 2;   // silu_mul's outputs
    const int groups = EPI == kSiluMul ? inter / 2 : (n + kRows - 1) / kRows;
    const bool active = group < groups;
    // the group's weight rows; a row past n repeats the last (read, never written)
    int row[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++)
        row[r] = EPI == kSiluMul ? (r < 2 ? 2 * group + r : inter + 2 * group + r - 2) : min(group * kRows + r, n - 1);
    const int vecs = k / 8, per = (vecs + splits - 1) / splits;
    const int begin = split * per, end = min(vecs, begin + per);
    const uint4* wr[kRows];
#pragma unroll
    for (int r = 0; r < kRows; r++) wr[r] = reinterpret_cast<const uint4*>(w + (size_t) (active ? row[r] : 0) * k);

    const uint4* xs = reinterpret_cast<const uint4*>(x);   // [M, K / 8]
    // The weights wait on nothing: no kernel of the step writes them. Launched early (programmatic
    // dependent launch) and small enough for L2, the block asks for all of its slice of them, a
    // 128-byte line a lane at a time, while the kernel before it finishes; otherwise the first
    // loads go ahead of the norm.
    if (active) {
        if (prefetch_all) {
            for (int v = begin + lane * 8; v < end; v += 32 * 8)
#pragma unroll
                for (int r = 0; r < kRows; r++) prefetch_l2(wr[r] + v);
        } else if (NORM) {
#pragma unroll
            for (int j = 0; j < 2; j++)
                if (begin + lane + 32 * j < end)
#pragma unroll
                    for (int r = 0; r < kRows; r++) prefetch_l2(wr[r] + begin + lane + 32 * j);
        }
    }
    pdl_wait();   // x, and out (the residual), are the kernels' before this one
    if constexpr (NORM) {
        uint4* normed = reinterpret_cast<uint4*>(normed_raw);
        rms_norm_rows<M, kThreads>(xs, norm_w, normed, vecs, vecs, k, eps);
        xs = normed;
    }

    float acc[kRows][M];
#pragma unroll
    for (int r = 0; r < kRows; r++)
#pragma unroll
        for (int m = 0; m < M; m++) acc[r][m] = 0.f;
    if (active) {
#pragma unroll 2
        for (int v = begin + lane; v < end; v += 32) {
            uint4 wv[kRows];
#pragma unroll
            for (int r = 0; r < kRows; r++) wv[r] = load_weights(wr[r] + v);
            float wf[kRows][8];
#pragma unroll
            for (int r = 0; r < kRows; r++) unpack8(wv[r], wf[r]);
#pragma unroll
            for (int m = 0; m < M; m++) {
                float e[8];
                unpack8(NORM ? xs[(size_t) m * vecs + v] : __ldg(xs + (size_t) m * vecs + v), e);
#pragma unroll
                for (int r = 0; r < kRows; r++)
#pragma unroll
                    for (int j = 0; j < 8; j++) acc[r][m] = fmaf(wf[r][j], e[j], acc[r][m]);
            }
        }
    }
    pdl_launch_dependents();   // past the weights: the next kernel may queue its blocks and load its own
#pragma unroll
    for (int r = 0; r < kRows; r++)
#pragma unroll
        for (int m = 0; m < M; m++) {
            const float s = warp_sum(acc[r][m]);
            if (lane == 0) partial[warp][r][m] = s;
        }
    __syncthreads();
    if (!active || split != 0) return;
    // the group's first warp finishes: each output's splits summed in order
    const int first = warp;   // the group's warps are first .. first + splits - 1
    auto total = [&](int r, int m) {
        float s = 0.f;
        for (int i = 0; i < splits; i++) s += partial[first + i][r][m];
        return s;
    };
    if constexpr (EPI == kSiluMul) {
        for (int i = lane; i < 2 * M; i += 32) {
            const int o = i / M, m = i % M;   // gate row o of the group, up row 2 + o
            const float g = round_bf16(total(o, m)), u = round_bf16(total(2 + o, m));
            out[(size_t) m * inter + 2 * group + o] = __float2bfloat16(round_bf16(g / (1.f + expf(-g))) * u);
        }
    } else {
        for (int i = lane; i < kRows * M; i += 32) {
            const int r = i / M, m = i % M, nr = group * kRows + r;
            if (nr >= n) continue;
            bf16* o = out + (size_t) m * n + nr;
            if constexpr (EPI == kResidual)
                *o = __float2bfloat16(f(*o) + round_bf16(total(r, m)));
            else
                *o = __float2bfloat16(bias != nullptr ? total(r, m) + f(bias[nr]) : total(r, m));
        }
    }
}

// The tensor-core form (ROLLOUT_GEMV_MMA=1 until measured against the one above): the x rows are
// the m of m16n8k16 MMAs (rows M..15 zero) and a warp's 8 weight rows their n, so that 1 to 8
// tokens cost the same instructions: the form above grows its FMAs with the rows and stops
// being bound by the memory past 4 (KernelBench gemv, ADR 0030). An MMA's k may be any
// permutation of the chunk's K as long as x and W take the same one: lane (gid, tig) loads 16
// bytes of its row at K 32c + 8 tig, and MMA j of the chunk takes their words 2j and 2j + 1 as
// its k {2 tig, 2 tig + 1} and {8 + 2 tig, 9 + 2 tig}, from W and x alike. Each output's sum runs
// in a fixed order (the MMA's over 16 k, chunk after chunk, then the splits in order): the same
// bits whatever M or the other rows are, as above.
constexpr int kMmaWarps = 8;
constexpr int kMmaThreads = kMmaWarps * 32;
constexpr int kChunk = 32;      // K a warp takes per row per chunk: 4 lanes x 8 bf16
constexpr int kUnroll = 8;      // chunks a lane has in flight: 128 bytes of W, 4 KB a warp
constexpr int kMinChunks = 3;   // the fewest chunks a split leaves each warp (0.5B's 896-wide K: 28 chunks, 8 splits)
constexpr int kNormPad = 4;   // 16-byte words after each normed row: row m + 1 starts 16 banks on, so a quarter warp's loads of two rows do not collide

// One step of a warp's loop: chunks c0 .. c0 + kUnroll - 1 (FULL), or those of them before end,
// every load issued before the first MMA. A full step has no branch, so that the compiler keeps
// its loads together; only the warp's last step is partial.
template <bool FULL, bool NORM>
__device__ __forceinline__ void mma_step(float (&c)[4], const uint4* wr, const uint4* xr, bool token, int c0, int end) {
    uint4 wv[kUnroll], xv[kUnroll];
    const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
        const bool in = FULL || c0 + u < end;
        wv[u] = in ? load_weights(wr + 4 * (c0 + u)) : zero;
        xv[u] = in && token ? (NORM ? xr[4 * (c0 + u)] : __ldg(xr + 4 * (c0 + u))) : zero;
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
        if (!FULL && c0 + u >= end) break;   // the same for every lane of the warp
        const uint32_t a0[4] = {xv[u].x, 0u, xv[u].y, 0u}, a1[4] = {xv[u].z, 0u, xv[u].w, 0u};
        rollout::device::mma(c, a0, wv[u].x, wv[u].y);
        rollout::device::mma(c, a1, wv[u].z, wv[u].w);
    }
}

template <int M, int EPI, bool NORM>
__global__ void __launch_bounds__(kMmaThreads, 2) dense_gemv_mma_kernel(
        const bf16* __restrict__ x, const bf16* __restrict__ norm_w, const bf16* __restrict__ w,
        const bf16* __restrict__ bias, bf16* __restrict__ out, int n, int k, int splits, float eps, bool prefetch_all) {
    extern __shared__ __align__(16) unsigned char normed_raw[];
    __shared__ float partial[kMmaWarps][8][8];   // [warp][token][the tile's row]
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
    const int tile = blockIdx.x * (kMmaWarps / splits) + warp / splits, split = warp % splits;
    const int inter = n / 2;   // silu_mul's outputs
    const int tiles = EPI == kSiluMul ? inter / 4 : (n + 7) / 8;
    const bool active = tile < tiles;   // the same for the whole warp: the MMAs need all its lanes
    // The lane's weight row, the tile's row gid: 8 consecutive rows, or for silu_mul gate rows and
    // their up rows alternating (2i: gate row 4 tile + i, 2i + 1: its up row), so that a lane's two
    // outputs are a gate and its up. A row past n repeats the last (read, never written).
    const int row = !active ? 0
                    : EPI == kSiluMul ? (gid % 2 == 0 ? 4 * tile + gid / 2 : inter + 4 * tile + gid / 2)
                                      : min(8 * tile + gid, n - 1);
    const int vecs = k / 8, chunks = k / kChunk, per = (chunks + splits - 1) / splits;
    const int begin = split * per, end = min(chunks, begin + per);
    const uint4* wr = reinterpret_cast<const uint4*>(w + (size_t) row * k) + tig;   // chunk c at wr[4c]

    // the weights wait on nothing (see dense_gemv_kernel): the slice's 128-byte lines, the row's
    // four lanes taking turns, or before the norm its first two
    if (active) {
        const char* rb = reinterpret_cast<const char*>(w + (size_t) row * k);
        const int from = 64 * begin, to = 64 * end;   // bytes: 32 bf16 a chunk
        if (prefetch_all) {
            for (int off = from + 128 * tig; off < to; off += 512) prefetch_l2(rb + off);
        } else if (NORM && tig < 2 && from + 128 * tig < to) {
            prefetch_l2(rb + from + 128 * tig);
        }
    }
    pdl_wait();   // x, and out (the residual), are the kernels' before this one
    const uint4* xs = reinterpret_cast<const uint4*>(x);   // [M, K / 8]
    int stride = vecs;
    if constexpr (NORM) {
        uint4* normed = reinterpret_cast<uint4*>(normed_raw);
        stride = vecs + kNormPad;
        rms_norm_rows<M, kMmaThreads>(xs, norm_w, normed, vecs, stride, k, eps);
        xs = normed;
    }
    const bool token = gid < M;   // lanes of rows M..7 feed the MMA zeros
    const uint4* xr = xs + (size_t) (token ? gid : 0) * stride + tig;

    float c[4] = {0.f, 0.f, 0.f, 0.f};   // (token gid, tile rows 2 tig and 2 tig + 1); c[2], c[3] the zero rows 8..15's
    if (active) {
        int c0 = begin;
        for (; c0 + kUnroll <= end; c0 += kUnroll) mma_step<true, NORM>(c, wr, xr, token, c0, end);
        if (c0 < end) mma_step<false, NORM>(c, wr, xr, token, c0, end);
    }
    pdl_launch_dependents();   // past the weights
    partial[warp][gid][2 * tig] = c[0];
    partial[warp][gid][2 * tig + 1] = c[1];
    __syncthreads();
    if (!active || split != 0 || !token) return;
    // the tile's first warp finishes: each output's splits summed in order
    float s0 = 0.f, s1 = 0.f;
    for (int i = 0; i < splits; i++) {
        s0 += partial[warp + i][gid][2 * tig];
        s1 += partial[warp + i][gid][2 * tig + 1];
    }
    const int m = gid;
    if constexpr (EPI == kSiluMul) {
        const float g = round_bf16(s0), u = round_bf16(s1);
        out[(size_t) m * inter + 4 * tile + tig] = __float2bfloat16(round_bf16(g / (1.f + expf(-g))) * u);
    } else {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int nr = 8 * tile + 2 * tig + r;
            if (nr >= n) continue;
            const float t = r == 0 ? s0 : s1;
            bf16* o = out + (size_t) m * n + nr;
            if constexpr (EPI == kResidual)
                *o = __float2bfloat16(f(*o) + round_bf16(t));
            else
                *o = __float2bfloat16(bias != nullptr ? t + f(bias[nr]) : t);
        }
    }
}

// The normed rows may take more shared memory than a kernel gets without asking (48 KB with its
// static arrays: 8 rows of a 3,072 hidden size are 48 KB alone), so each instantiation is granted
// what its launch needs, once per new high (an attribute of the function, not a stream operation:
// allowed during a graph capture). Past the card's limit (99 KB on sm_86/89, 227 KB on sm_90) the
// launch fails with CUDA's message. The engine launches from one thread, on one device.
template <int M, int EPI, bool NORM, bool MMA>
const char* launch(const rollout::kernels::GemvArgs& a, int blocks, int splits, size_t smem, cudaStream_t stream) {
    auto kernel = MMA ? dense_gemv_mma_kernel<M, EPI, NORM> : dense_gemv_kernel<M, EPI, NORM>;
    static size_t granted = 0;
    if (smem > granted) {
        const cudaError_t opted = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
        if (opted != cudaSuccess) return cudaGetErrorString(opted);
        granted = smem;
    }
    // the whole slice into L2 while waiting, where the matrix fits it with room (0.5B's gate-up,
    // 17 MB; not 7B's, 271 MB, whose blocks in later waves would evict the first ones' lines)
    const bool pdl = rollout::device::pdl_enabled() && (size_t) a.n * a.k * sizeof(bf16) <= (size_t) 24 << 20;
    const cudaError_t launched = rollout::device::launch(
            kernel, dim3(blocks), dim3(MMA ? kMmaThreads : kThreads), smem, stream, static_cast<const bf16*>(a.x),
            static_cast<const bf16*>(a.norm_w), static_cast<const bf16*>(a.w), static_cast<const bf16*>(a.bias),
            static_cast<bf16*>(a.out), a.n, a.k, splits, a.eps, pdl);
    return launched != cudaSuccess ? cudaGetErrorString(launched) : nullptr;
}

template <int M, bool MMA>
const char* launch_rows(const rollout::kernels::GemvArgs& a, int blocks, int splits, size_t smem, cudaStream_t stream) {
    const bool norm = a.norm_w != nullptr;
    switch (a.epilogue) {
        case kStore: return norm ? launch<M, kStore, true, MMA>(a, blocks, splits, smem, stream)
                                 : launch<M, kStore, false, MMA>(a, blocks, splits, smem, stream);
        case kResidual: return norm ? "dense_gemv: the residual epilogue takes no norm"
                                    : launch<M, kResidual, false, MMA>(a, blocks, splits, smem, stream);
        case kSiluMul: return norm ? launch<M, kSiluMul, true, MMA>(a, blocks, splits, smem, stream)
                                   : launch<M, kSiluMul, false, MMA>(a, blocks, splits, smem, stream);
        default: return "dense_gemv: unknown epilogue";
    }
}

template <bool MMA>
const char* launch_any(const rollout::kernels::GemvArgs& a, int blocks, int splits, size_t smem, cudaStream_t stream) {
    switch (a.rows) {
        case 1: return launch_rows<1, MMA>(a, blocks, splits, smem, stream);
        case 2: return launch_rows<2, MMA>(a, blocks, splits, smem, stream);
        case 3: return launch_rows<3, MMA>(a, blocks, splits, smem, stream);
        case 4: return launch_rows<4, MMA>(a, blocks, splits, smem, stream);
        case 5: return launch_rows<5, MMA>(a, blocks, splits, smem, stream);
        case 6: return launch_rows<6, MMA>(a, blocks, splits, smem, stream);
        case 7: return launch_rows<7, MMA>(a, blocks, splits, smem, stream);
        default: return launch_rows<8, MMA>(a, blocks, splits, smem, stream);
    }
}

// Whether dense_gemv takes the tensor-core form: ROLLOUT_GEMV_MMA=1, read once; off until
// measured on a GPU (docs/benchmarks.md).
bool mma_enabled() {
    static const bool on = [] {
        const char* e = std::getenv("ROLLOUT_GEMV_MMA");
        return e != nullptr && e[0] == '1';
    }();
    return on;
}

int multiprocessors() {
    static const int count = [] {
        int device = 0, sms = 0;
        cudaGetDevice(&device);
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
        return sms > 0 ? sms : 132;
    }();
    return count;
}

}  // namespace

namespace rollout {
namespace kernels {

int gemv_max_rows() { return 8; }

const char* dense_gemv(const GemvArgs& a, cudaStream_t stream) {
    if (a.rows < 1 || a.rows > gemv_max_rows()) return "dense_gemv: rows must be 1 to 8";
    if (a.n < 1 || a.k < 8 || a.k % 8 != 0 || (a.k > 8192 && a.norm_w != nullptr))
        return "dense_gemv: N must be positive, K a positive multiple of 8 (at most 8,192 with a norm)";
    if (a.epilogue == kSiluMul && a.n % 4 != 0) return "dense_gemv: silu_mul needs an even intermediate size";
    if (a.epilogue != kStore && a.bias != nullptr) return "dense_gemv: only the store epilogue adds a bias";
    // Splits of K until there are some 16 warps an SM, as long as each warp keeps enough of its
    // rows' loads in flight: 0.5B's q/k/v and o (896 wide) would otherwise leave most of the
    // H100's 132 SMs idle.
    const int target = 16 * multiprocessors();
    if (mma_enabled() && a.k % kChunk == 0 && (a.epilogue != kSiluMul || a.n % 8 == 0)) {
        // a warp takes 8 rows (silu_mul: 4 gate rows and their up rows), and keeps at least
        // kMinChunks chunks
        const int tiles = a.epilogue == kSiluMul ? a.n / 8 : (a.n + 7) / 8, chunks = a.k / kChunk;
        int splits = 1;
        while (splits < kMmaWarps && tiles * splits < target && chunks / (2 * splits) >= kMinChunks) splits *= 2;
        const int per_block = kMmaWarps / splits;
        const int blocks = (tiles + per_block - 1) / per_block;
        const size_t smem = a.norm_w != nullptr ? (size_t) a.rows * (a.k + 8 * kNormPad) * sizeof(bf16) : 0;
        return launch_any<true>(a, blocks, splits, smem, stream);
    }
    // kRows rows a warp (silu_mul: two gate rows and their up rows), each warp keeping at least
    // 16 16-byte loads of each row (half its lanes): 0.5B's q/k/v and o then get 144 and 112
    // blocks, where whole warps a split would leave them 72 and 56
    const int groups = a.epilogue == kSiluMul ? a.n / 4 : (a.n + kRows - 1) / kRows;
    const int vecs = a.k / 8;
    int splits = 1;
    while (splits < kMaxSplits && groups * splits < target && vecs / (2 * splits) >= 16) splits *= 2;
    const int per_block = kWarps / splits;
    const int blocks = (groups + per_block - 1) / per_block;
    const size_t smem = a.norm_w != nullptr ? (size_t) a.rows * a.k * sizeof(bf16) : 0;
    return launch_any<false>(a, blocks, splits, smem, stream);
}

}  // namespace kernels
}  // namespace rollout
