// What each of our entry points (rollout_cuda.h) requires of the tensors it is handed, checked
// before a kernel touches their memory: a wrong tensor becomes an exception with a message (a
// Java RuntimeException through JavaCPP), never a read or write past the end of a buffer, nor a
// device pointer taken for a host one (ADR 0014).
//
// What is checked: every tensor is defined, on the expected device, of the expected dtype and
// number of dimensions, contiguous; the sizes that the kernel derives from one argument agree
// with the others; the sizes fit the launchers' ints. What is not: the *values* of index tensors
// (positions, KV slots, block ids, context lengths), which live on the device and would cost a
// device-to-host copy and a synchronisation per call (and cannot be read inside a CUDA-graph
// capture). They come from the engine's own scheduler and block manager, never from a request.
//
// Plain ATen, no CUDA header: the caller names the device the tensors must be on, so this file
// compiles against any libtorch, CPU-only ones included.
#pragma once
#include <climits>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include <ATen/core/Tensor.h>

namespace rollout {
namespace checks {

constexpr c10::ScalarType BF16 = c10::ScalarType::BFloat16;
constexpr c10::ScalarType F32 = c10::ScalarType::Float;
constexpr c10::ScalarType I64 = c10::ScalarType::Long;
constexpr c10::ScalarType I32 = c10::ScalarType::Int;

// Message building only on the way out: the checks that pass cost a few field reads each.
[[noreturn]] inline void fail(const char* op, const char* name, const std::string& why) {
    throw std::invalid_argument(std::string(op) + ": " + name + " " + why);
}

inline std::string shape(const at::Tensor& t) {
    std::ostringstream s;
    s << t.sizes();
    return s.str();
}

// t is defined, on `device`, of `dtype`, has `dims` dimensions and is contiguous.
inline void tensor(const char* op, const char* name, const at::Tensor& t, c10::ScalarType dtype, int64_t dims,
                   c10::Device device) {
    if (!t.defined()) fail(op, name, "is an undefined tensor");
    if (t.device() != device) fail(op, name, "is on " + t.device().str() + ", not on " + device.str());
    if (t.scalar_type() != dtype)
        fail(op, name, std::string("is ") + c10::toString(t.scalar_type()) + ", not " + c10::toString(dtype));
    if (t.dim() != dims) fail(op, name, "has shape " + shape(t) + ", not " + std::to_string(dims) + " dimensions");
    if (!t.is_contiguous()) fail(op, name, "of shape " + shape(t) + " is not contiguous");
}

// Dimension d of t is `expected`, which `why` explains (another argument's size, or the op's rule).
inline void size(const char* op, const char* name, const at::Tensor& t, int64_t d, int64_t expected, const char* why) {
    if (t.size(d) != expected)
        fail(op, name, "has shape " + shape(t) + ": dimension " + std::to_string(d) + " must be " +
                               std::to_string(expected) + " (" + why + ")");
}

// t has exactly the shape of `like`.
inline void sameShape(const char* op, const char* name, const at::Tensor& t, const char* likeName, const at::Tensor& like) {
    if (t.sizes() != like.sizes()) fail(op, name, "has shape " + shape(t) + ", " + likeName + " " + shape(like));
}

// A size handed to a launcher as an int.
inline int toInt(const char* op, const char* what, int64_t n) {
    if (n > INT_MAX) fail(op, what, "is " + std::to_string(n) + ", more than a kernel launch takes");
    return static_cast<int>(n);
}

// t's data starts on a `bytes` boundary, as a kernel that reads it that many bytes at a time needs
// (a misaligned load is a sticky error that takes the CUDA context down, not an exception).
inline void aligned(const char* op, const char* name, const at::Tensor& t, int bytes) {
    if (reinterpret_cast<std::uintptr_t>(t.data_ptr()) % bytes != 0)
        fail(op, name, "of shape " + shape(t) + " does not start on a " + std::to_string(bytes) +
                               "-byte boundary (a view at an odd offset?)");
}

inline void aligned16(const char* op, const char* name, const at::Tensor& t) {
    aligned(op, name, t, 16);
}

// rmsNorm: x, out (rows, hidden) bf16; w (hidden) bf16. addRmsNorm also: delta, hOut like x.
inline void rmsNorm(const at::Tensor& x, const at::Tensor* delta, const at::Tensor* hOut, const at::Tensor& w,
                    const at::Tensor& out, c10::Device device) {
    const char* op = delta != nullptr ? "addRmsNorm" : "rmsNorm";
    tensor(op, "x", x, BF16, 2, device);
    tensor(op, "w", w, BF16, 1, device);
    size(op, "w", w, 0, x.size(1), "x's hidden size");
    tensor(op, "out", out, BF16, 2, device);
    sameShape(op, "out", out, "x", x);
    if (delta != nullptr) {
        tensor(op, "delta", *delta, BF16, 2, device);
        sameShape(op, "delta", *delta, "x", x);
        tensor(op, "hOut", *hOut, BF16, 2, device);
        sameShape(op, "hOut", *hOut, "x", x);
    }
    toInt(op, "rows", x.size(0));
}

// gateUp (rows, 2 inter) bf16 -> out (rows, inter) bf16.
inline void siluAndMul(const at::Tensor& gateUp, const at::Tensor& out, c10::Device device) {
    const char* op = "siluAndMul";
    tensor(op, "gateUp", gateUp, BF16, 2, device);
    tensor(op, "out", out, BF16, 2, device);
    size(op, "out", out, 0, gateUp.size(0), "gateUp's rows");
    size(op, "gateUp", gateUp, 1, 2 * out.size(1), "twice out's width: gate then up");
    toInt(op, "rows", gateUp.size(0));
    toInt(op, "inter", out.size(1));
}

// qkv (T, (nH + 2 nKv) D) bf16; positions, slots (T) int64; cos, sin (maxPos, D) bf16; qNorm, kNorm
// (D) bf16, both or neither; qOut (T, nH, D) bf16; kCache, vCache (slots, nKv, D) bf16.
inline void ropeAndCache(const at::Tensor& qkv, const at::Tensor& positions, const at::Tensor& slots,
                         const at::Tensor& cos, const at::Tensor& sin, const at::Tensor* qNorm, const at::Tensor* kNorm,
                         const at::Tensor& qOut, const at::Tensor& kCache, const at::Tensor& vCache, c10::Device device) {
    const char* op = "ropeAndCache";
    tensor(op, "qOut", qOut, BF16, 3, device);
    tensor(op, "kCache", kCache, BF16, 3, device);
    tensor(op, "vCache", vCache, BF16, 3, device);
    sameShape(op, "vCache", vCache, "kCache", kCache);
    const int64_t t = qOut.size(0), nH = qOut.size(1), d = qOut.size(2), nKv = kCache.size(1);
    size(op, "kCache", kCache, 2, d, "qOut's head_dim");
    tensor(op, "qkv", qkv, BF16, 2, device);
    size(op, "qkv", qkv, 0, t, "qOut's tokens");
    size(op, "qkv", qkv, 1, (nH + 2 * nKv) * d, "(qOut's heads + 2 kCache's heads) * head_dim");
    tensor(op, "positions", positions, I64, 1, device);
    size(op, "positions", positions, 0, t, "qOut's tokens");
    tensor(op, "slots", slots, I64, 1, device);
    size(op, "slots", slots, 0, t, "qOut's tokens");
    tensor(op, "cos", cos, BF16, 2, device);
    size(op, "cos", cos, 1, d, "qOut's head_dim");
    tensor(op, "sin", sin, BF16, 2, device);
    sameShape(op, "sin", sin, "cos", cos);
    if ((qNorm == nullptr) != (kNorm == nullptr)) fail(op, "qNorm and kNorm", "must be given both or neither");
    if (qNorm != nullptr) {
        tensor(op, "qNorm", *qNorm, BF16, 1, device);
        size(op, "qNorm", *qNorm, 0, d, "qOut's head_dim");
        tensor(op, "kNorm", *kNorm, BF16, 1, device);
        size(op, "kNorm", *kNorm, 0, d, "qOut's head_dim");
    }
    toInt(op, "tokens", t);
}

// q, out (B, nH, D) bf16, q on a 4-byte boundary (read in pairs); kCache, vCache (slots, nKv, D)
// bf16, on 16-byte boundaries (copied 16 bytes at a time); blockTable (B, maxBlocks) and seqLens (B) int64; partM, partL (B, nH, splits)
// and partAcc (B, nH, splits, D) float32; counters (B, nKv) int32.
inline void pagedDecodeAttention(const at::Tensor& q, const at::Tensor& kCache, const at::Tensor& vCache,
                                 const at::Tensor& blockTable, const at::Tensor& seqLens, const at::Tensor& partM,
                                 const at::Tensor& partL, const at::Tensor& partAcc, const at::Tensor& counters,
                                 const at::Tensor& out, int blockSize, int partitionTokens, int64_t splits,
                                 c10::Device device) {
    const char* op = "pagedDecodeAttention";
    if (blockSize <= 0) fail(op, "blockSize", "is " + std::to_string(blockSize) + ", not positive");
    if (partitionTokens < 0) fail(op, "partitionTokens", "is " + std::to_string(partitionTokens) + ", not 0 or positive");
    tensor(op, "q", q, BF16, 3, device);
    aligned(op, "q", q, 4);
    const int64_t b = q.size(0), nH = q.size(1), d = q.size(2);
    tensor(op, "out", out, BF16, 3, device);
    sameShape(op, "out", out, "q", q);
    tensor(op, "kCache", kCache, BF16, 3, device);
    size(op, "kCache", kCache, 2, d, "q's head_dim");
    aligned16(op, "kCache", kCache);
    tensor(op, "vCache", vCache, BF16, 3, device);
    sameShape(op, "vCache", vCache, "kCache", kCache);
    aligned16(op, "vCache", vCache);
    tensor(op, "blockTable", blockTable, I64, 2, device);
    size(op, "blockTable", blockTable, 0, b, "q's batch");
    tensor(op, "seqLens", seqLens, I64, 1, device);
    size(op, "seqLens", seqLens, 0, b, "q's batch");
    tensor(op, "partM", partM, F32, 3, device);
    size(op, "partM", partM, 0, b, "q's batch");
    size(op, "partM", partM, 1, nH, "q's heads");
    size(op, "partM", partM, 2, splits, "the kernel's splits for this batch and context");
    tensor(op, "partL", partL, F32, 3, device);
    sameShape(op, "partL", partL, "partM", partM);
    tensor(op, "partAcc", partAcc, F32, 4, device);
    size(op, "partAcc", partAcc, 0, b, "q's batch");
    size(op, "partAcc", partAcc, 1, nH, "q's heads");
    size(op, "partAcc", partAcc, 2, splits, "the kernel's splits for this batch and context");
    size(op, "partAcc", partAcc, 3, d, "q's head_dim");
    tensor(op, "counters", counters, I32, 2, device);
    size(op, "counters", counters, 0, b, "q's batch");
    size(op, "counters", counters, 1, kCache.size(1), "kCache's KV heads");
    toInt(op, "batch", b);
    toInt(op, "the block table's context (maxBlocks * blockSize)", blockTable.size(1) * blockSize);
}

// logits (rows, vocab) float32; temperature, uniform (rows) float32; out (rows, 2) float32.
inline void sampleRows(const at::Tensor& logits, const at::Tensor& temperature, const at::Tensor& uniform,
                       const at::Tensor& out, const at::Tensor* maskWords, const at::Tensor* maskRow, c10::Device device) {
    const char* op = "sampleRows";
    tensor(op, "logits", logits, logits.defined() && logits.scalar_type() == BF16 ? BF16 : F32, 2, device);
    const int64_t rows = logits.size(0);
    tensor(op, "temperature", temperature, F32, 1, device);
    size(op, "temperature", temperature, 0, rows, "logits' rows");
    tensor(op, "uniform", uniform, F32, 1, device);
    size(op, "uniform", uniform, 0, rows, "logits' rows");
    tensor(op, "out", out, F32, 2, device);
    size(op, "out", out, 0, rows, "logits' rows");
    size(op, "out", out, 1, 2, "token and logprob");
    toInt(op, "rows", rows);
    toInt(op, "vocab", logits.size(1));
    if ((maskWords == nullptr) != (maskRow == nullptr)) fail(op, "maskWords", "and maskRow come together, or neither");
    if (maskWords != nullptr) {
        tensor(op, "maskWords", *maskWords, I64, 2, device);
        size(op, "maskWords", *maskWords, 1, (logits.size(1) + 63) / 64, "a bit for each of the logits' tokens");
        toInt(op, "maskWords' rows", maskWords->size(0));
        tensor(op, "maskRow", *maskRow, I64, 1, device);
        size(op, "maskRow", *maskRow, 0, rows, "logits' rows");
    }
}

// moeRoute: logits (T, E) bf16 -> weights (T, k) float32, experts (T, k) int32; routed (slots, k)
// int32, each row contiguous (a layer of the cache's record), and slots (T) int64, both or neither.
inline void moeRoute(const at::Tensor& logits, const at::Tensor& weights, const at::Tensor& experts,
                     const at::Tensor* routed, const at::Tensor* slots, int64_t maxExperts, c10::Device device) {
    const char* op = "moeRoute";
    tensor(op, "logits", logits, BF16, 2, device);
    const int64_t t = logits.size(0), e = logits.size(1);
    if (e > maxExperts) fail(op, "logits", "has " + std::to_string(e) + " experts, more than " + std::to_string(maxExperts));
    tensor(op, "weights", weights, F32, 2, device);
    size(op, "weights", weights, 0, t, "logits' tokens");
    const int64_t k = weights.size(1);
    if (k < 1 || k > 32 || k > e) fail(op, "weights", "has shape " + shape(weights) + ": k must be 1 to 32 and at most the experts");
    tensor(op, "experts", experts, I32, 2, device);
    sameShape(op, "experts", experts, "weights", weights);
    if ((routed == nullptr) != (slots == nullptr)) fail(op, "routed and slots", "must be given both or neither");
    if (routed != nullptr) {
        // one layer of the cache's (slots, layers, k) record: rows apart, each row contiguous
        const at::Tensor& r = *routed;
        if (!r.defined()) fail(op, "routed", "is an undefined tensor");
        if (r.device() != device) fail(op, "routed", "is on " + r.device().str() + ", not on " + device.str());
        if (r.scalar_type() != I32) fail(op, "routed", std::string("is ") + c10::toString(r.scalar_type()) + ", not Int");
        if (r.dim() != 2) fail(op, "routed", "has shape " + shape(r) + ", not 2 dimensions");
        size(op, "routed", r, 1, k, "weights' k");
        if (r.stride(1) != 1 || r.stride(0) < k) fail(op, "routed", "of shape " + shape(r) + " does not hold its rows contiguous");
        tensor(op, "slots", *slots, I64, 1, device);
        size(op, "slots", *slots, 0, t, "logits' tokens");
    }
    toInt(op, "tokens", t);
}

// moeAlign: experts (T, k) int32 -> rowOf, tokenOf (T k) int64, ends (E) int32.
inline void moeAlign(const at::Tensor& experts, const at::Tensor& rowOf, const at::Tensor& tokenOf, const at::Tensor& ends,
                     c10::Device device) {
    const char* op = "moeAlign";
    tensor(op, "experts", experts, I32, 2, device);
    const int64_t n = experts.size(0) * experts.size(1);
    tensor(op, "rowOf", rowOf, I64, 1, device);
    size(op, "rowOf", rowOf, 0, n, "experts' tokens times k");
    tensor(op, "tokenOf", tokenOf, I64, 1, device);
    size(op, "tokenOf", tokenOf, 0, n, "experts' tokens times k");
    tensor(op, "ends", ends, I32, 1, device);
    if (ends.size(0) < 1) fail(op, "ends", "has no experts");
    toInt(op, "copies", n);
}

// moeCombine: ys (T k, H) bf16, rowOf (T k) int64, weights (T, k) float32 -> out (T, H) bf16.
inline void moeCombine(const at::Tensor& ys, const at::Tensor& rowOf, const at::Tensor& weights, const at::Tensor& out,
                       c10::Device device) {
    const char* op = "moeCombine";
    tensor(op, "weights", weights, F32, 2, device);
    const int64_t t = weights.size(0), k = weights.size(1);
    tensor(op, "ys", ys, BF16, 2, device);
    size(op, "ys", ys, 0, t * k, "weights' tokens times k");
    tensor(op, "rowOf", rowOf, I64, 1, device);
    size(op, "rowOf", rowOf, 0, t * k, "weights' tokens times k");
    tensor(op, "out", out, BF16, 2, device);
    size(op, "out", out, 0, t, "weights' tokens");
    size(op, "out", out, 1, ys.size(1), "ys' hidden size");
    toInt(op, "tokens", t);
    toInt(op, "hidden", ys.size(1));
}

// The matrix-vector kernels' rows sorted by expert: ends (E) int32, one per expert of the weights
// (`why`), and at most 65535 rows (`rowsName`'s), the launch grid's second dimension.
inline void sortedRows(const char* op, const at::Tensor& ends, int64_t experts, const char* why, const char* rowsName,
                       int64_t rows, c10::Device device) {
    tensor(op, "ends", ends, I32, 1, device);
    size(op, "ends", ends, 0, experts, why);
    if (rows > 65535) fail(op, rowsName, "has " + std::to_string(rows) + " rows, more than 65535");
    toInt(op, "experts", experts);
}

// moeGateUp: x (T, H) bf16, tokenOf (N) int64, gateUp (E, 2I, H) bf16, ends (E) int32 -> act (N, I) bf16.
inline void moeGateUp(const at::Tensor& x, const at::Tensor& tokenOf, const at::Tensor& gateUp, const at::Tensor& ends,
                      const at::Tensor& act, c10::Device device) {
    const char* op = "moeGateUp";
    tensor(op, "x", x, BF16, 2, device);
    tensor(op, "gateUp", gateUp, BF16, 3, device);
    const int64_t e = gateUp.size(0), h = gateUp.size(2);
    if (gateUp.size(1) % 2 != 0) fail(op, "gateUp", "has shape " + shape(gateUp) + ": dimension 1 must be even (gate, then up)");
    const int64_t inter = gateUp.size(1) / 2;
    size(op, "x", x, 1, h, "gateUp's hidden size");
    if (h % 8 != 0) fail(op, "gateUp", "has shape " + shape(gateUp) + ": the hidden size must be a multiple of 8");
    tensor(op, "tokenOf", tokenOf, I64, 1, device);
    tensor(op, "act", act, BF16, 2, device);
    size(op, "act", act, 0, tokenOf.size(0), "tokenOf's rows");
    size(op, "act", act, 1, inter, "gateUp's intermediate size");
    sortedRows(op, ends, e, "gateUp's experts", "tokenOf", tokenOf.size(0), device);
    aligned16(op, "x", x);
    aligned16(op, "gateUp", gateUp);
    if (inter < 1) fail(op, "gateUp", "has shape " + shape(gateUp) + ": no intermediate rows");
    toInt(op, "hidden", h);
    toInt(op, "intermediate", inter);
}

// moeDown: act (N, I) bf16, down (E, H, I) bf16, ends (E) int32 -> ys (N, H) bf16.
inline void moeDown(const at::Tensor& act, const at::Tensor& down, const at::Tensor& ends, const at::Tensor& ys,
                    c10::Device device) {
    const char* op = "moeDown";
    tensor(op, "act", act, BF16, 2, device);
    tensor(op, "down", down, BF16, 3, device);
    const int64_t e = down.size(0), h = down.size(1), inter = down.size(2);
    size(op, "act", act, 1, inter, "down's intermediate size");
    if (inter % 8 != 0) fail(op, "down", "has shape " + shape(down) + ": the intermediate size must be a multiple of 8");
    tensor(op, "ys", ys, BF16, 2, device);
    size(op, "ys", ys, 0, act.size(0), "act's rows");
    size(op, "ys", ys, 1, h, "down's hidden size");
    sortedRows(op, ends, e, "down's experts", "act", act.size(0), device);
    aligned16(op, "act", act);
    aligned16(op, "down", down);
    if (h < 1) fail(op, "down", "has shape " + shape(down) + ": no hidden rows");
    toInt(op, "hidden", h);
    toInt(op, "intermediate", inter);
}

// denseGemv: x (rows, K) bf16 with 1 <= rows <= maxRows; normW (K) bf16 or null; w (N, K) bf16, K a
// multiple of 8 (at most 8,192 with a norm: the normed rows live in shared memory); bias (N) bf16 or
// null, only with epilogue 0; out (rows, N) bf16, or (rows, N / 2) with epilogue 2 (N / 2 even);
// epilogue 1 adds into out, which must not be x (the callers' buffers never overlap otherwise).
inline void denseGemv(const at::Tensor& x, const at::Tensor* normW, const at::Tensor& w, const at::Tensor* bias,
                      const at::Tensor& out, int epilogue, int maxRows, c10::Device device) {
    const char* op = "denseGemv";
    if (epilogue < 0 || epilogue > 2) fail(op, "epilogue", std::to_string(epilogue) + " is not 0 (store), 1 (residual) or 2 (silu_mul)");
    tensor(op, "w", w, BF16, 2, device);
    const int64_t n = w.size(0), k = w.size(1);
    if (k % 8 != 0 || k < 8) fail(op, "w", "has shape " + shape(w) + ": its input size must be a positive multiple of 8");
    if (n < 1) fail(op, "w", "has shape " + shape(w) + ": no output rows");
    tensor(op, "x", x, BF16, 2, device);
    size(op, "x", x, 1, k, "w's input size");
    const int64_t rows = x.size(0);
    if (rows < 1 || rows > maxRows) fail(op, "x", "has shape " + shape(x) + ": 1 to " + std::to_string(maxRows) + " rows");
    if (normW != nullptr) {
        tensor(op, "normW", *normW, BF16, 1, device);
        size(op, "normW", *normW, 0, k, "w's input size");
        if (k > 8192) fail(op, "w", "has shape " + shape(w) + ": a normed input is at most 8192 wide");
        if (epilogue == 1) fail(op, "normW", "is given with the residual epilogue, which takes no norm");
        aligned16(op, "normW", *normW);
    }
    if (bias != nullptr) {
        if (epilogue != 0) fail(op, "bias", "is given with an epilogue other than the store");
        tensor(op, "bias", *bias, BF16, 1, device);
        size(op, "bias", *bias, 0, n, "w's output size");
    }
    tensor(op, "out", out, BF16, 2, device);
    size(op, "out", out, 0, rows, "x's rows");
    if (epilogue == 2) {
        if (n % 4 != 0) fail(op, "w", "has shape " + shape(w) + ": gate then up, of an even intermediate size");
        size(op, "out", out, 1, n / 2, "w's intermediate size: half its rows");
    } else {
        size(op, "out", out, 1, n, "w's output size");
    }
    if (epilogue == 1 && out.data_ptr() == x.data_ptr()) fail(op, "out", "is x: the residual epilogue adds into another tensor");
    aligned16(op, "x", x);
    aligned16(op, "w", w);
    toInt(op, "rows", rows);
    toInt(op, "n", n);
    toInt(op, "k", k);
}

}  // namespace checks
}  // namespace rollout
