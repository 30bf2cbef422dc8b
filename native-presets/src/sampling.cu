// One token for every row of a decode step's logits, in one kernel, for rows that need no top-k,
// top-p or min-p filtering (RL rollouts sample from the whole distribution at temperature 1).
// libtorch's ops take about ten passes over the (rows, vocab) float32 logits for the same work
// (divide by the temperature, argmax, softmax, cumsum, search, log_softmax); at 512 rows of a
// 151,936-token vocabulary each pass moves 311 MB.
//
// A block of 1,024 threads takes a row. Its 32 warps each own one contiguous chunk of the row
// (1/32 of it) and read it once, 16 bytes a lane, for the chunk's argmax and its softmax mass. The
// draw then needs no walk over the row: the 32 chunk masses, summed in order, say which chunk the
// uniform falls in, and only that chunk (some 4,700 logits, still in L1/L2) is read again and
// scanned by the whole block to find the token. The first version walked the row tile by tile
// with three barriers a tile, 163 us for one row on an H100 (Nsight Compute, batch-1 decode):
// more than the 0.5B model's LM head.
//
// Every sum has a fixed order that depends on the row alone (batch-invariant, issue #21).
//
//   logits       [rows, vocab] float32 (penalties and bans already written in), or bf16 straight from
//                the LM head when no row needs them: converted exactly, so a row draws the same token
//                with the same logprob as from its float32 copy, and the step skips the cast's pass
//                (at 512 rows: 155 MB read and 311 MB written, then 311 MB read here, against 155)
//   temperature  [rows] float32; 0 picks the argmax (the first, as torch.argmax does)
//   uniform      [rows] float32 in [0, 1): the row's draw, from the sequence's own generator
//   out          [rows, 2] float32: (token, logprob of the token under softmax(logits / T))
//   mask_words   [table_rows, words] uint64 or null: constrained decoding's masks (issue #22), bit t
//                of a row set where token t is allowed (the words of a Java BitSet), one row per
//                automaton state, kept on the device by the sampler (DeviceMasks)
//   mask_row     [rows] int64, with mask_words: the row of mask_words that masks each logits row, -1
//                for none. A masked-out token is read as -inf, so a row draws, bit for bit, what it
//                draws from logits with the mask already written in (masked_fill with -inf), without
//                a (rows, vocab) boolean tensor made and read, nor a pass that writes the logits.
//                A row index outside the table (a bug on the host) masks nothing rather than read
//                wild memory: where the draw is a token the constraint forbids, the engine ends that
//                request with the reason.
// The token id travels as a float, exact for vocabularies below 2^24 (the launcher checks).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math_constants.h>

#include "rollout_kernels.h"

namespace {

constexpr int THREADS = 1024;
constexpr int WARPS = THREADS / 32;
constexpr unsigned FULL = 0xffffffffu;
constexpr int VEC = 8;   // logits a lane reads at once: 16 bytes of bf16 (two float4s of float32)

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// VEC logits from 16-byte aligned p, as float.
__device__ __forceinline__ void load_vec(const float* p, float (&f)[VEC]) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}

__device__ __forceinline__ void load_vec(const __nv_bfloat16* p, float (&f)[VEC]) {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&a);
#pragma unroll
    for (int i = 0; i < VEC / 2; i++) {
        const float2 g = __bfloat1622float2(h[i]);
        f[2 * i] = g.x;
        f[2 * i + 1] = g.y;
    }
}

struct MaxSum {  // an online softmax's running max m and sum of exp(y - m)
    float m, s;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
    if (a.m == -CUDART_INF_F) return b;
    if (b.m == -CUDART_INF_F) return a;
    const float m = fmaxf(a.m, b.m);
    return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

// One more value y into a running max and sum: one exp, not merge's two.
__device__ __forceinline__ void add(MaxSum& a, float y) {
    if (y == -CUDART_INF_F) return;
    if (y > a.m) {
        a.s = a.s * __expf(a.m - y) + 1.f;  // exp(-inf) is 0 for the first value
        a.m = y;
    } else {
        a.s += __expf(y - a.m);
    }
}

struct ArgMax {  // the largest raw logit and its index; ties go to the lower index
    float v;
    int i;
};

__device__ __forceinline__ ArgMax better(ArgMax a, ArgMax b) {
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

// The row's mask, or null: bit v of words[v / 64] says whether token v is allowed.
struct Mask {
    const unsigned long long* words;

    __device__ __forceinline__ bool allows(int v) const { return words == nullptr || ((words[v >> 6] >> (v & 63)) & 1ull); }
    // the bits of tokens v .. v + VEC - 1, v a multiple of VEC (eight bits of one word)
    __device__ __forceinline__ unsigned vec_bits(int v) const {
        return words == nullptr ? 0xffu : static_cast<unsigned>((words[v >> 6] >> (v & 63)) & 0xffull);
    }
    // x where the token is allowed, -inf where it is not
    __device__ __forceinline__ float apply(float x, int v) const { return allows(v) ? x : -CUDART_INF_F; }
};

__device__ __forceinline__ void take(ArgMax& am, MaxSum& ms, float x, int v, float inv_t) {
    am = better(am, {x, v});
    add(ms, x * inv_t);
}

// Inclusive prefix sum over the block, in thread order; total gets the block's sum.
__device__ float block_scan(float x, float* warp_sums, float& total) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float y = __shfl_up_sync(FULL, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) warp_sums[warp] = x;
    __syncthreads();
    if (warp == 0) {
        float w = warp_sums[lane];  // WARPS == 32
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float y = __shfl_up_sync(FULL, w, o);
            if (lane >= o) w += y;
        }
        warp_sums[lane] = w;
    }
    __syncthreads();
    total = warp_sums[WARPS - 1];
    return x + (warp == 0 ? 0.f : warp_sums[warp - 1]);
}

// kVec: every row starts 16-byte aligned and vocab is a multiple of VEC, so a lane reads VEC
// logits at once; otherwise it reads the same VEC one at a time. Either way a lane takes the
// values in the same order, and the chunks are the same for both input types (multiples of VEC),
// so every sum's order depends on the row alone: bf16 logits give the bits their float32 copy
// would, wherever either lies.
template <typename T, bool kVec>
__global__ void __launch_bounds__(THREADS) sample_kernel(const T* __restrict__ logits, int vocab, int chunk,
                                                         const float* __restrict__ temperature,
                                                         const float* __restrict__ uniform, float* __restrict__ out,
                                                         const unsigned long long* __restrict__ mask_words,
                                                         const long long* __restrict__ mask_row, int mask_rows,
                                                         int mask_stride) {
    const int row = blockIdx.x, tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    const T* x = logits + (size_t) row * vocab;
    const long long r = mask_words == nullptr ? -1 : mask_row[row];
    const Mask mask{r >= 0 && r < mask_rows ? mask_words + (size_t) r * mask_stride : nullptr};
    const float t = temperature[row];
    const bool greedy = t <= 0.f;
    const float inv_t = greedy ? 1.f : 1.f / t;

    // 1. each warp's chunk [lo, hi): its argmax of the raw logits, and max and mass of y = x / T
    const int lo = min(warp * chunk, vocab), hi = min(lo + chunk, vocab);
    ArgMax am{-CUDART_INF_F, 0};   // a row of NaN or of -inf alone keeps token 0, a real index
    MaxSum ms{-CUDART_INF_F, 0.f};
#pragma unroll 2
    for (int v = lo + lane * VEC; v < hi; v += 32 * VEC) {  // chunk is a multiple of VEC, so lo is too
        if (kVec) {
            float f[VEC];
            load_vec(x + v, f);
            const unsigned bits = mask.vec_bits(v);
#pragma unroll
            for (int i = 0; i < VEC; i++) take(am, ms, (bits >> i) & 1u ? f[i] : -CUDART_INF_F, v + i, inv_t);
        } else {
            for (int i = 0; i < VEC && v + i < hi; i++) take(am, ms, mask.apply(to_float(x[v + i]), v + i), v + i, inv_t);
        }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        am = better(am, {__shfl_xor_sync(FULL, am.v, o), __shfl_xor_sync(FULL, am.i, o)});
        ms = merge(ms, {__shfl_xor_sync(FULL, ms.m, o), __shfl_xor_sync(FULL, ms.s, o)});
    }
    __shared__ ArgMax wam[WARPS];
    __shared__ MaxSum wms[WARPS];
    __shared__ float warp_sums[WARPS];
    __shared__ int found, last;
    if (lane == 0) {
        wam[warp] = am;
        wms[warp] = ms;
    }
    if (tid == 0) {
        found = vocab;
        last = -1;
    }
    __syncthreads();

    // 2. the row's argmax and max, the chunks' masses under that max, their running sums in order
    am = wam[0];
    float m = wms[0].m;
    for (int w = 1; w < WARPS; w++) {
        am = better(am, wam[w]);
        m = fmaxf(m, wms[w].m);
    }
    const MaxSum mine = wms[lane];
    float mass = mine.m == -CUDART_INF_F ? 0.f : mine.s * __expf(mine.m - m);
    float upto = mass;  // every warp computes the same 32 running sums, lane c holding chunk c's
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float y = __shfl_up_sync(FULL, upto, o);
        if (lane >= o) upto += y;
    }
    const float sum = __shfl_sync(FULL, upto, 31);  // the softmax's normaliser
    int token = am.i;

    // 3. the draw: the chunk whose running sum first passes u * sum, then the token inside it
    const unsigned with_mass = __ballot_sync(FULL, mass > 0.f);
    if (!greedy && with_mass != 0) {  // a row with every token banned keeps the argmax, as greedy would
        const float target = uniform[row] * sum;
        const unsigned passed = __ballot_sync(FULL, mass > 0.f && upto > target);
        // float rounding can leave u * sum past every running sum: then the last chunk with mass
        const int c = passed != 0 ? __ffs(passed) - 1 : 31 - __clz(with_mass);
        const float before = __shfl_sync(FULL, upto - mass, c);
        const int clo = min(c * chunk, vocab), chi = min(clo + chunk, vocab);
        // each thread a contiguous run of the chunk, so that one scan of the run sums orders them
        const int per = (chi - clo + THREADS - 1) / THREADS;
        const int a = min(clo + tid * per, chi), b = min(a + per, chi);
        float e_sum = 0.f;
        for (int v = a; v < b; v++) {
            const float xv = mask.apply(to_float(x[v]), v);
            e_sum += xv == -CUDART_INF_F ? 0.f : __expf(xv * inv_t - m);
        }
        float chunk_total;
        float acc = before + block_scan(e_sum, warp_sums, chunk_total) - e_sum;
        for (int v = a; v < b; v++) {
            const float xv = mask.apply(to_float(x[v]), v);
            if (xv == -CUDART_INF_F) continue;
            const float e = __expf(xv * inv_t - m);
            acc += e;
            if (e > 0.f && acc > target) {  // never a token whose probability rounds to 0
                atomicMin(&found, v);
                break;
            }
        }
        for (int v = b - 1; v >= a; v--) {  // the fallback: the chunk's last token with mass
            if (__expf(mask.apply(to_float(x[v]), v) * inv_t - m) > 0.f) {
                atomicMax(&last, v);
                break;
            }
        }
        __syncthreads();
        token = found < vocab ? found : last >= 0 ? last : token;
    }
    if (tid == 0) out[2 * row] = (float) token;
    // a row whose mask leaves nothing finite keeps token 0: its logprob is what the masked logits give (NaN)
    if (tid == 0) out[2 * row + 1] = mask.apply(to_float(x[token]), token) * inv_t - m - __logf(sum);
}

}  // namespace

namespace rollout {
namespace kernels {

namespace {

template <typename T>
void launch(const void* logits, const void* temperature, const void* uniform, void* out, int rows, int vocab,
            const void* mask_words, const void* mask_row, int mask_rows, cudaStream_t stream) {
    // a row of bf16 is 16-byte aligned where the first is and vocab is a multiple of 8 (of float32: 4)
    const bool vec = vocab % VEC == 0 && reinterpret_cast<size_t>(logits) % 16 == 0;
    const int chunk = ((vocab + WARPS - 1) / WARPS + VEC - 1) / VEC * VEC;  // vectors never straddle two chunks
    auto kernel = vec ? sample_kernel<T, true> : sample_kernel<T, false>;
    kernel<<<rows, THREADS, 0, stream>>>(static_cast<const T*>(logits), vocab, chunk, static_cast<const float*>(temperature),
                                         static_cast<const float*>(uniform), static_cast<float*>(out),
                                         static_cast<const unsigned long long*>(mask_words),
                                         static_cast<const long long*>(mask_row), mask_rows, (vocab + 63) / 64);
}

}  // namespace

const char* sample_rows(const void* logits, bool bf16, const void* temperature, const void* uniform, void* out, int rows,
                        int vocab, const void* mask_words, const void* mask_row, int mask_rows, cudaStream_t stream) {
    if (vocab <= 0 || vocab >= (1 << 24)) return "sample_rows: vocab must be in 1 .. 2^24 - 1 (token ids travel as float32)";
    if ((mask_words == nullptr) != (mask_row == nullptr)) return "sample_rows: mask_words and mask_row come together";
    if (rows == 0) return nullptr;
    if (bf16) launch<__nv_bfloat16>(logits, temperature, uniform, out, rows, vocab, mask_words, mask_row, mask_rows, stream);
    else launch<float>(logits, temperature, uniform, out, rows, vocab, mask_words, mask_row, mask_rows, stream);
    return launch_error();
}

}  // namespace kernels
}  // namespace rollout
