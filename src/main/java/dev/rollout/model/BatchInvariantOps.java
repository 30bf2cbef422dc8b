package dev.rollout.model;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * The deterministic arithmetic's GEMMs and attention (ADR 0026): every reduction runs in a shape
 * that depends on nothing but the row, so a token's numbers are the same bits whatever else its
 * step computes (the batch, chunk boundaries, a prefix-cache hit, a recompute after preemption)
 * and whether it is decoded or scored as part of a prompt.
 *
 * <ul>
 *   <li>Every row of a GEMM is a product of its own, (1, K) times (K, N), one item of a
 *       {@code bmm} over the rows with the weight broadcast (stride 0, not copied). A BLAS picks
 *       its kernel and blocking by the number of rows (measured: four groups of bits for one row
 *       between 1 and 300 rows), and its micro-kernel need not treat the rows of one call alike
 *       either: OpenBLAS's Haswell sgemm kernel (chosen by {@code OPENBLAS_CORETYPE=Haswell} in
 *       the environment, on an AVX-512 AMD EPYC) gives a row other bits by its place among 32
 *       (ADR 0026, 2026-12 addendum). A (1, K)
 *       product has one place, so the same call gives the same bits in any batch.</li>
 *   <li>Attention, prefill and decode alike, takes each query's keys in blocks of {@link #KEYS}
 *       at absolute positions (0 to S − 1, S to 2S − 1, ...) and merges the blocks in order with an
 *       online softmax. Each query row of each head meets a block as its own (1, d) × (d, S) and
 *       (1, S) × (S, d) product, for the reason above, and a block past a query's position adds
 *       exact zeros, so a decode row and the same position scored inside a prompt meet the same
 *       arithmetic. libtorch's SDPA picks its splits by length: decode matched its own causal
 *       prefill at 1 of 200 positions.</li>
 * </ul>
 * Row-wise ops (norms, RoPE, SiLU, softmax, log-softmax) are the same for any number of rows
 * already, and stay libtorch's, with one rule: an elementwise op whose vectorised and scalar forms
 * round differently (exp, sigmoid: libtorch's CPU loops take SLEEF's vector functions, then the
 * C library's for the tail past the last whole pair of vectors) must see rows of a whole number of
 * {@link #VECTOR} floats, or be iterated row by row. Otherwise which elements fall in the tail
 * depends on the number of rows. Hence S is a multiple of it, and {@link #sigmoid} and
 * {@link #exp} pad.
 */
final class BatchInvariantOps {
    /** Two AVX-512 vectors of float32 (four of AVX2's): the step of libtorch's vectorised CPU loops. */
    static final int VECTOR = 32;
    /** S: the keys of one attention block. */
    static final int KEYS = 32;

    private BatchInvariantOps() {}

    /** x (T, K) times w (N, K) transposed, plus bias (N) where not null: (T, N), each row a product of its own. */
    static Tensor linear(Tensor x, Tensor w, Tensor bias) {
        long t = x.size(0), k = x.size(1), n = w.size(0);
        // not one (T, K) x (K, N) GEMM, nor fixed chunks of it: a row's bits may depend on its place in the call
        Tensor out = torch.bmm(x.contiguous().view(t, 1, k), w.t().unsqueeze(0).expand(t, k, n)).view(t, n);   // (T, N)
        return bias == null ? out : out.add(bias);
    }

    /**
     * One group of sequences' queries against their gathered context.
     *
     * @param q         (P, Q, nH, d): P sequences' queries, Q per sequence (padding rows included)
     * @param positions (P, Q) int64: each query's position in its sequence (padding: any position it may see)
     * @param k         (P, L, nKv, d): each sequence's keys at positions 0 .. L − 1 (past its context: any finite values)
     * @param v         (P, L, nKv, d): its values, the same way
     * @return (P, Q, nH, d)
     */
    static Tensor attend(Tensor q, Tensor positions, Tensor k, Tensor v, ModelConfig c) {
        int nH = c.numHeads(), nKv = c.numKvHeads(), d = c.headDim(), g = nH / nKv;
        long p = q.size(0), queries = q.size(1), rows = p * queries * nH;
        long blocks = (k.size(1) + KEYS - 1) / KEYS;
        ScalarType dtype = q.scalar_type();
        Tensor qs = q.contiguous().view(rows, 1, d);                                        // (P Q nH, 1, d): a row per query and head
        Tensor pos = positions.reshape(p, queries, 1, 1);                                     // (P, Q, 1, 1)
        Tensor ks = padDim(k, 1, blocks * KEYS), vs = padDim(v, 1, blocks * KEYS);          // (P, blocks * S, nKv, d)
        Tensor keyPos = torch.arange(new Scalar(KEYS), Torch.options(ScalarType.Long, q.device()));   // (S)
        Scalar scale = new Scalar(1.0 / Math.sqrt(d));
        Tensor m = null, l = null, acc = null;
        for (long b = 0; b < blocks; b++) {
            // each row's block of keys and values, its KV head's, as the bmm's own item (copied: a view cannot broadcast it)
            Tensor kb = ks.narrow(1, b * KEYS, KEYS).permute(0, 2, 3, 1).view(p, 1, nKv, 1, d, KEYS)
                    .expand(p, queries, nKv, g, d, KEYS).reshape(rows, d, KEYS);                       // (P Q nH, d, S)
            Tensor vb = vs.narrow(1, b * KEYS, KEYS).permute(0, 2, 1, 3).view(p, 1, nKv, 1, KEYS, d)
                    .expand(p, queries, nKv, g, KEYS, d).reshape(rows, KEYS, d);                       // (P Q nH, S, d)
            Tensor scores = torch.bmm(qs, kb).view(p, queries, nH, KEYS).to(ScalarType.Float).mul(scale);  // (P, Q, nH, S)
            Tensor masked = torch.gt(keyPos.add(new Scalar(b * KEYS)), pos);                           // (P, Q, 1, S)
            scores = scores.masked_fill(masked, new Scalar(Double.NEGATIVE_INFINITY));
            Tensor blockMax = scores.amax(new long[] {-1}, true);                                      // (P, Q, nH, 1)
            Tensor mNew = m == null ? blockMax : torch.maximum(m, blockMax);
            Tensor e = torch.exp(scores.sub(mNew));                                                    // rows of S; masked keys: exact zeros
            Tensor pv = torch.bmm(e.to(dtype).view(rows, 1, KEYS), vb).view(p, queries, nH, d).to(ScalarType.Float);  // (P, Q, nH, d)
            Tensor rowSum = e.sum(new long[] {-1}, true, new ScalarTypeOptional());
            if (m == null) {
                l = rowSum;
                acc = pv;
            } else {
                // a block past every key a row may see leaves its max, so alpha is exactly 1 and its terms 0
                // P Q nH values, not a multiple of VECTOR: padded, so that which of them falls in a vector tail does not depend on P and Q
                Tensor alpha = exp(m.sub(mNew).view(rows, 1)).view(p, queries, nH, 1);
                l = l.mul(alpha).add(rowSum);
                acc = acc.mul(alpha).add(pv);
            }
            m = mNew;
        }
        return acc.div(l).to(dtype);                                                               // (P, Q, nH, d)
    }

    /** exp(x) for x (T, n), each row padded to a whole number of {@link #VECTOR} first: (T, n). */
    static Tensor exp(Tensor x) {
        return padded(x, torch::exp);
    }

    /** sigmoid(x) for x (T, n), each row padded to a whole number of {@link #VECTOR} first: (T, n). */
    static Tensor sigmoid(Tensor x) {
        return padded(x, torch::sigmoid);
    }

    /** An elementwise op over x (T, n) whose rows are padded to whole vectors, so that no element's rounding depends on T. */
    private static Tensor padded(Tensor x, java.util.function.UnaryOperator<Tensor> op) {
        long n = x.size(1), to = (n + VECTOR - 1) / VECTOR * VECTOR;
        return op.apply(padDim(x, 1, to).contiguous()).narrow(1, 0, n);
    }

    /** x with zeros appended along {@code dim} up to {@code size}. */
    private static Tensor padDim(Tensor x, int dim, long size) {
        long have = x.size(dim);
        if (have == size) return x;
        long[] shape = new long[(int) x.dim()];
        for (int i = 0; i < shape.length; i++) shape[i] = i == dim ? size - have : x.size(i);
        return torch.cat(new TensorVector(x, Torch.zeros(Torch.options(x.scalar_type(), x.device()), shape)), dim);
    }
}
