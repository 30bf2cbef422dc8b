// A mixture of experts' two GEMMs when a step routes only a few copies (decode at small batches),
// as matrix-vector products that read each chosen expert's rows once, at the card's bandwidth
// (issue #19: at batch 1 the grouped GEMM's tensor-core tiles of 64 or more rows held one row
// each, and the experts' weights were read far below the HBM floor):
//
//   moe_gate_up  x [T, H] bf16, the sorted rows' tokens (token_of [N] int64, moe_align's), the
//                stacked gate-up weights [E, 2I, H] bf16 (each expert's gate rows, then its up rows)
//                -> act [N, I] bf16 = bf16(bf16(silu(g)) * u), g and u the row's dots with its
//                expert's gate and up rows, each rounded to bf16: what silu_and_mul makes of a
//                GEMM's bf16 output, without the gathered copies of x or the [N, 2I] product
//   moe_down     act [N, I] bf16, the down weights [E, H, I] bf16 -> ys [N, H] bf16
//
// Rows are sorted by expert (moe_align): expert e's block is rows ends[e-1] .. ends[e]. One block
// of threads per (run of up to kCopies rows of one expert, tile of output rows); a block whose row
// starts no run returns at once. A warp takes kRows weight rows at a time, its lanes 16 bytes of
// each apart, and dots them with every row of its run, accumulating in float32 in a fixed order:
// the same bits on every run, whatever else the step holds.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "rollout_device.cuh"
#include "rollout_kernels.h"

namespace {

using bf16 = __nv_bfloat16;

constexpr int kCopies = 4;   // rows of one expert a block dots at once (a larger run takes several blocks)
constexpr int kRows = 2;     // weight rows in flight per warp: gate and up, or two down rows
constexpr int kWarps = 4;

using rollout::device::round_bf16;
using rollout::device::warp_sum;

// The expert whose block holds sorted row r, found by the whole block at once: exactly one e has
// ends[e - 1] <= r < ends[e] (the blocks partition the rows). One round of loads, where a binary
// search would wait on seven in a row before the first weight could be asked for.
__device__ __forceinline__ int expert_of(const int* __restrict__ ends, int num_experts, int r) {
    __shared__ int found;
    for (int e = threadIdx.x; e < num_experts; e += blockDim.x)
        if ((e == 0 ? 0 : ends[e - 1]) <= r && r < ends[e]) found = e;
    __syncthreads();
    return found;
}

// 8 bf16 of a and b, as one 16-byte load each, dotted into acc.
__device__ __forceinline__ float dot8(const uint4& a, const uint4& b, float acc) {
    const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&a);
    const __nv_bfloat162* y = reinterpret_cast<const __nv_bfloat162*>(&b);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 p = __bfloat1622float2(x[i]), q = __bfloat1622float2(y[i]);
        acc = fmaf(p.x, q.x, acc);
        acc = fmaf(p.y, q.y, acc);
    }
    return acc;
}

// kGateUp: output i of `units` (I) is silu(gate row i) * (up row I + i); else output h (of H, in
// pairs) is down rows h and h + 1. `in` is the dot length (H, or I), a multiple of 8.
template <bool kGateUp>
__global__ void __launch_bounds__(kWarps * 32) moe_gemv_kernel(
        const bf16* __restrict__ in_rows, const long long* __restrict__ token_of, const bf16* __restrict__ w,
        const int* __restrict__ ends, bf16* __restrict__ out, int num_experts, int in, int units) {
    const int r = blockIdx.y;
    // every row lies in some expert's block when ends[E - 1] is the rows' count, as moe_align and
    // libtorch's cumsum leave it; should it not, no expert is found and the block must not read one
    if (r >= ends[num_experts - 1]) return;
    const int e = expert_of(ends, num_experts, r);
    const int start = e == 0 ? 0 : ends[e - 1];
    if ((r - start) % kCopies != 0) return;   // another block's run
    const int n = min(kCopies, ends[e] - r);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int unit = (blockIdx.x * kWarps + warp) * (kGateUp ? 1 : kRows);
    if (unit >= units) return;
    const int out_rows = kGateUp ? 2 * units : units;   // the expert's weight rows
    const bf16* rows[kRows];
    rows[0] = w + ((size_t) e * out_rows + unit) * in;
    rows[1] = kGateUp ? w + ((size_t) e * out_rows + units + unit) * in
                      : w + ((size_t) e * out_rows + min(unit + 1, units - 1)) * in;
    const uint4* xs[kCopies];
#pragma unroll
    for (int c = 0; c < kCopies; c++) {
        const int row = r + min(c, n - 1);   // a copy past the run repeats the last: loaded, never written
        xs[c] = reinterpret_cast<const uint4*>(in_rows + (size_t) (kGateUp ? token_of[row] : row) * in);
    }
    float acc[kRows][kCopies] = {};
    const int vectors = in / 8;
#pragma unroll 4
    for (int v = lane; v < vectors; v += 32) {
        uint4 wv[kRows];
#pragma unroll
        for (int j = 0; j < kRows; j++) wv[j] = __ldg(reinterpret_cast<const uint4*>(rows[j]) + v);
#pragma unroll
        for (int c = 0; c < kCopies; c++) {
            if (c >= n) break;
            const uint4 xv = __ldg(xs[c] + v);
#pragma unroll
            for (int j = 0; j < kRows; j++) acc[j][c] = dot8(wv[j], xv, acc[j][c]);
        }
    }
#pragma unroll
    for (int c = 0; c < kCopies; c++) {
        if (c >= n) break;
        const float a = warp_sum(acc[0][c]), b = warp_sum(acc[1][c]);
        if (lane != 0) continue;
        if (kGateUp) {
            const float g = round_bf16(a), u = round_bf16(b);
            out[(size_t) (r + c) * units + unit] = __float2bfloat16(round_bf16(g / (1.f + expf(-g))) * u);
        } else {
            out[(size_t) (r + c) * units + unit] = __float2bfloat16(a);
            if (unit + 1 < units) out[(size_t) (r + c) * units + unit + 1] = __float2bfloat16(b);
        }
    }
}

}  // namespace

namespace rollout {
namespace kernels {

const char* moe_gate_up(const void* x, const void* token_of, const void* gate_up, const void* ends, void* act, int copies,
                        int num_experts, int hidden, int inter, cudaStream_t stream) {
    if (hidden % 8 != 0) return "moe_gate_up: the hidden size must be a multiple of 8";
    if (copies == 0) return nullptr;
    const dim3 grid((inter + kWarps - 1) / kWarps, copies);
    moe_gemv_kernel<true><<<grid, kWarps * 32, 0, stream>>>(
            static_cast<const bf16*>(x), static_cast<const long long*>(token_of), static_cast<const bf16*>(gate_up),
            static_cast<const int*>(ends), static_cast<bf16*>(act), num_experts, hidden, inter);
    return launch_error();
}

const char* moe_down(const void* act, const void* down, const void* ends, void* ys, int copies, int num_experts,
                     int hidden, int inter, cudaStream_t stream) {
    if (inter % 8 != 0) return "moe_down: the intermediate size must be a multiple of 8";
    if (copies == 0) return nullptr;
    const dim3 grid((hidden + kWarps * kRows - 1) / (kWarps * kRows), copies);
    moe_gemv_kernel<false><<<grid, kWarps * 32, 0, stream>>>(
            static_cast<const bf16*>(act), nullptr, static_cast<const bf16*>(down), static_cast<const int*>(ends),
            static_cast<bf16*>(ys), num_experts, inter, hidden);
    return launch_error();
}

}  // namespace kernels
}  // namespace rollout
