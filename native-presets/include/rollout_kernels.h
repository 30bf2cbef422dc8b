// Our CUDA kernels' launchers: plain C++ and CUDA runtime types only, so that the .cu files build
// with nvcc alone and the JNI side (rollout_cuda.h) adds libtorch's stream.
#pragma once
#include <cuda_runtime_api.h>

namespace rollout {
namespace kernels {

// What a launcher returns after its launch: null, or the launch's error (a bad configuration, a
// sticky error from an earlier kernel), which the JNI side throws with the launcher's name.
inline const char* launch_error() {
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

// Decode attention over the paged KV cache; layouts in paged_attention.cu. Pointers are device
// pointers; the workspaces hold batch * num_heads * splits partials, splits and min_chunk from
// paged_decode_plan(...) for the same batch and block table.
struct PagedDecodeArgs {
    const void* q;            // [B, nH, D] bf16
    const void* k_cache;      // [slots, nKv, D] bf16
    const void* v_cache;      // [slots, nKv, D] bf16
    const void* block_table;  // [B, maxBlocks] int64
    const void* seq_lens;     // [B] int64
    void* part_m;             // [B, nH, S] float32
    void* part_l;             // [B, nH, S] float32
    void* part_acc;           // [B, nH, S, D] float32
    void* counters;           // [B, nKv] int32, zero before and after
    void* out;                // [B, nH, D] bf16
    int batch, num_heads, num_kv_heads, head_dim, block_size, max_blocks;
    int splits;               // S, the grid's blocks per (sequence, KV head)
    int min_chunk;            // the least context a split takes (partition_tokens 0)
    int partition_tokens;     // 0: chunks cut per sequence by the plan; > 0: chunks of this many tokens (batch-invariant)
    float scale;
};

// The kernel's grid for a batch on the current device: with partition_tokens 0, as many splits
// per (sequence, KV head) as fill the card's resident blocks when batch * KV heads would not (each
// at least min_chunk tokens), or, when the batch fills it, splits of the contexts longer than
// min_chunk; with partition_tokens > 0, the block table's context in partitions of that size.
struct PagedDecodePlan {
    int splits;
    int min_chunk;
};
PagedDecodePlan paged_decode_plan(int batch, int num_kv_heads, int head_dim, int max_blocks, int block_size,
                                  int partition_tokens);

// Launches on `stream`; returns null, or why it could not.
const char* paged_decode_attention(const PagedDecodeArgs& args, cudaStream_t stream);

// Fused per-layer ops (fused_ops.cu), all bf16. rms_norm with delta != null first writes
// h_out = x + delta and normalises that.
const char* rms_norm(const void* x, const void* delta, void* h_out, const void* w, void* out, int rows, int hidden,
                     float eps, cudaStream_t stream);

const char* silu_and_mul(const void* gate_up, void* out, int rows, int inter, cudaStream_t stream);

struct RopeArgs {
    const void* qkv;         // [T, (nH + 2 nKv) D] bf16, contiguous
    const void* positions;   // [T] int64
    const void* slots;       // [T] int64, the KV slot of each token
    const void* cos;         // [maxPos, D] bf16
    const void* sin;         // [maxPos, D] bf16
    const void* q_norm;      // [D] bf16, or null (no per-head norm)
    const void* k_norm;      // [D] bf16, or null
    void* q_out;             // [T, nH, D] bf16
    void* k_cache;           // [slots, nKv, D] bf16
    void* v_cache;           // [slots, nKv, D] bf16
    int tokens, num_heads, num_kv_heads, head_dim;
    float eps;
};

const char* rope_and_cache(const RopeArgs& args, cudaStream_t stream);

// One token per row of logits [rows, vocab], float32 or (bf16 true) bf16 (sampling.cu): the argmax
// where temperature[r] is 0, else a draw from softmax(logits / T) by inverse CDF at uniform[r] in
// [0, 1). out [rows, 2] float32 gets (token, its logprob under softmax(logits / T)). mask_words
// [mask_rows, ceil(vocab / 64)] uint64 and mask_row [rows] int64 (both or neither): row r takes
// only the tokens whose bits are set in mask_words[mask_row[r]]; -1 (or any row outside the
// table) masks nothing.
const char* sample_rows(const void* logits, bool bf16, const void* temperature, const void* uniform, void* out, int rows,
                        int vocab, const void* mask_words, const void* mask_row, int mask_rows, cudaStream_t stream);

// A mixture of experts' routing, sorting and combining around its grouped GEMMs (moe.cu).
// moe_route: logits [T, E] bf16 -> weights [T, k] float32, experts [T, k] int32, and where routed
// is not null routed[slots[t]] = experts[t] (routed [numSlots, k] int32, rows routed_stride apart;
// slots [T] int64).
int moe_max_experts();
const char* moe_route(const void* logits, void* weights, void* experts, void* routed, long long routed_stride,
                      const void* slots, int tokens, int num_experts, int k, bool renormalize, bool round_weights,
                      cudaStream_t stream);
// experts [N] int32 -> row_of [N] int64, token_of [N] int64 (the token of each sorted row: copy / k),
// ends [E] int32 (cumulative).
const char* moe_align(const void* experts, void* row_of, void* token_of, void* ends, int copies, int num_experts, int k,
                      cudaStream_t stream);
// ys [N, H] bf16, row_of [N] int64, weights [N] float32 -> out [T, H] bf16.
const char* moe_combine(const void* ys, const void* row_of, const void* weights, void* out, int tokens, int hidden, int k,
                        bool round_products, cudaStream_t stream);
// The experts' GEMMs at a few copies (moe_gemv.cu), over rows sorted by expert (ends [E] int32):
// moe_gate_up: x [T, H], token_of [N] int64, gate_up [E, 2I, H] -> act [N, I] = silu(gate) * up;
// moe_down: act [N, I], down [E, H, I] -> ys [N, H]; all bf16, H and I multiples of 8.
const char* moe_gate_up(const void* x, const void* token_of, const void* gate_up, const void* ends, void* act, int copies,
                        int num_experts, int hidden, int inter, cudaStream_t stream);
const char* moe_down(const void* act, const void* down, const void* ends, void* ys, int copies, int num_experts,
                     int hidden, int inter, cudaStream_t stream);

// A dense layer's projections at decode's 1 to gemv_max_rows() tokens (dense_gemv.cu), all bf16:
// out [rows, n] = x W^T (+ bias) (GEMV_STORE), out += x W^T in place (GEMV_RESIDUAL), or
// out [rows, n / 2] = silu(g) * u of g|u = x W^T (GEMV_SILU_MUL); with norm_w, x is first RMSNorm'd.
enum GemvEpilogue { GEMV_STORE = 0, GEMV_RESIDUAL = 1, GEMV_SILU_MUL = 2 };
struct GemvArgs {
    const void* x;        // [rows, k] bf16: the input, or with norm_w the residual stream it is normed from
    const void* norm_w;   // [k] bf16, or null
    const void* w;        // [n, k] bf16, a checkpoint's linear layout
    const void* bias;     // [n] bf16, or null (GEMV_STORE only)
    void* out;            // [rows, n] bf16, or [rows, n / 2] for GEMV_SILU_MUL
    int rows, n, k;
    int epilogue;         // a GemvEpilogue
    float eps;            // the norm's
};
int gemv_max_rows();
const char* dense_gemv(const GemvArgs& args, cudaStream_t stream);

}  // namespace kernels
}  // namespace rollout
