// Our CUDA kernels' launchers: plain C++ and CUDA runtime types only, so that the .cu files build
// with nvcc alone and the JNI side (rollout_cuda.h) adds libtorch's stream.
#pragma once
#include <cuda_runtime_api.h>

namespace rollout {
namespace kernels {

// Decode attention over the paged KV cache; layouts in paged_attention.cu. Pointers are device
// pointers; the workspaces hold batch * num_heads * paged_decode_partitions(...) partials.
struct PagedDecodeArgs {
    const void* q;            // [B, nH, D] bf16
    const void* k_cache;      // [slots, nKv, D] bf16
    const void* v_cache;      // [slots, nKv, D] bf16
    const void* block_table;  // [B, maxBlocks] int32
    const void* seq_lens;     // [B] int32
    void* part_m;             // [B, nH, P] float32
    void* part_l;             // [B, nH, P] float32
    void* part_acc;           // [B, nH, P, D] float32
    void* out;                // [B, nH, D] bf16
    int batch, num_heads, num_kv_heads, head_dim, block_size, max_blocks;
    float scale;
};

// How many context partitions the kernel uses for a block table of max_blocks blocks.
int paged_decode_partitions(int max_blocks, int block_size);

// Launches on `stream`; returns null, or why it could not.
const char* paged_decode_attention(const PagedDecodeArgs& args, cudaStream_t stream);

}  // namespace kernels
}  // namespace rollout
