package dev.rollout.model;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptional;
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
 *   <li>GEMMs run over chunks of {@link #ROWS} rows, the last one padded with zeros: a BLAS picks
 *       its kernel and blocking by the number of rows (measured: four groups of bits for one row
 *       between 1 and 300 rows), but within a chunk of fixed size a row's result does not depend
 *       on its place.</li>
 *   <li>Attention, prefill and decode alike, takes each query's keys in blocks of {@link #KEYS}
 *       at absolute positions (0 to S − 1, S to 2S − 1, ...) and merges the blocks in order with an
 *       online softmax; the queries go in chunks of {@link #ROWS} per sequence. Every score and
 *       P·V product is then a GEMM of one fixed shape, and a block past a query's position adds
 *       exact zeros, so a decode row and the same position scored inside a prompt meet the same
 *       arithmetic. libtorch's SDPA picks its splits by length: decode matched its own causal
 *       prefill at 1 of 200 positions.</li>
 * </ul>
 * Row-wise ops (norms, RoPE, SiLU, softmax, log-softmax) are the same for any number of rows
 * already, and stay libtorch's, with one rule: an elementwise op whose vectorised and scalar forms
 * round differently (exp, sigmoid: libtorch's CPU loops take SLEEF's vector functions, then the
 * C library's for the tail past the last whole pair of vectors) must see rows of a whole number of
 * {@link #VECTOR} floats, or be iterated row by row. Otherwise which elements fall in the tail
 * depends on the number of rows. Hence R and S are multiples of it, and {@link #sigmoid} pads.
 */
final class BatchInvariantOps {
    /** Two AVX-512 vectors of float32 (four of AVX2's): the step of libtorch's vectorised CPU loops. */
    static final int VECTOR = 32;
    /** R: the rows of every GEMM call, and the queries of a sequence attended at once. */
    static final int ROWS = 32;
    /** S: the keys of one attention block. */
    static final int KEYS = 32;

    private BatchInvariantOps() {}

    /** x (T, K) times w (N, K) transposed, plus bias (N) where not null: (T, N), in chunks of {@link #ROWS} rows. */
    static Tensor linear(Tensor x, Tensor w, Tensor bias) {
        long t = x.size(0);
        Tensor padded = padRows(x, ROWS);                                                   // (C * R, K)
        TensorVector parts = new TensorVector();
        for (long at = 0; at < padded.size(0); at += ROWS) {
            Tensor chunk = padded.narrow(0, at, ROWS);                                      // (R, K)
            parts.push_back(bias == null ? torch.linear(chunk, w)
                    : torch.linear(chunk, w, new TensorOptional(bias))); // (R, N)
        }
        Tensor out = parts.size() == 1 ? parts.get(0) : torch.cat(parts);                   // (C * R, N)
        return out.size(0) == t ? out : out.narrow(0, 0, t);
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
        long p = q.size(0), queries = q.size(1), subs = (queries + ROWS - 1) / ROWS;
        long blocks = (k.size(1) + KEYS - 1) / KEYS;
        ScalarType dtype = q.scalar_type();
        // queries in chunks of R per sequence: (P, subs, nKv, g * R, d), rows (group member, query)
        Tensor qs = padDim(q, 1, subs * ROWS).view(p, subs, ROWS, nKv, g, d).permute(0, 1, 3, 4, 2, 5)
                .reshape(p, subs, nKv, (long) g * ROWS, d);
        Tensor pos = padDim(positions, 1, subs * ROWS).view(p, subs, 1, 1, ROWS)             // (P, subs, 1, 1, R)
                .expand(p, subs, 1, g, ROWS).reshape(p, subs, 1, (long) g * ROWS, 1);       // (P, subs, 1, g * R, 1)
        Tensor ks = padDim(k, 1, blocks * KEYS).permute(0, 2, 3, 1).unsqueeze(1);           // (P, 1, nKv, d, blocks * S)
        Tensor vs = padDim(v, 1, blocks * KEYS).permute(0, 2, 1, 3).unsqueeze(1);           // (P, 1, nKv, blocks * S, d)
        Tensor keyPos = torch.arange(new Scalar(KEYS), Torch.options(ScalarType.Long, q.device()));   // (S)
        Scalar scale = new Scalar(1.0 / Math.sqrt(d));
        Tensor m = null, l = null, acc = null;
        for (long b = 0; b < blocks; b++) {
            Tensor kb = ks.narrow(4, b * KEYS, KEYS).expand(p, subs, nKv, d, KEYS).contiguous();    // (P, subs, nKv, d, S)
            Tensor vb = vs.narrow(3, b * KEYS, KEYS).expand(p, subs, nKv, KEYS, d).contiguous();    // (P, subs, nKv, S, d)
            Tensor scores = torch.matmul(qs, kb).to(ScalarType.Float).mul(scale);                  // (P, subs, nKv, g * R, S)
            Tensor masked = torch.gt(keyPos.add(new Scalar(b * KEYS)), pos);                       // (P, subs, 1, g * R, S)
            scores = scores.masked_fill(masked, new Scalar(Double.NEGATIVE_INFINITY));
            Tensor blockMax = scores.amax(new long[] {-1}, true);                                  // (..., g * R, 1)
            Tensor mNew = m == null ? blockMax : torch.maximum(m, blockMax);
            Tensor e = torch.exp(scores.sub(mNew));                                                // masked keys: exact zeros
            Tensor pv = torch.matmul(e.to(dtype), vb).to(ScalarType.Float);                        // (..., g * R, d)
            Tensor rowSum = e.sum(new long[] {-1}, true, new ScalarTypeOptional());
            if (m == null) {
                l = rowSum;
                acc = pv;
            } else {
                // a block past every key a row may see leaves its max, so alpha is exactly 1 and its terms 0
                Tensor alpha = torch.exp(m.sub(mNew));
                l = l.mul(alpha).add(rowSum);
                acc = acc.mul(alpha).add(pv);
            }
            m = mNew;
        }
        Tensor o = acc.div(l).to(dtype);                                                           // (P, subs, nKv, g * R, d)
        return o.view(p, subs, nKv, g, ROWS, d).permute(0, 1, 4, 2, 3, 5).reshape(p, subs * ROWS, nH, d)
                .narrow(1, 0, queries);                                                            // (P, Q, nH, d)
    }

    /** sigmoid(x) for x (T, n), each row padded to a whole number of {@link #VECTOR} first: (T, n). */
    static Tensor sigmoid(Tensor x) {
        long n = x.size(1), to = (n + VECTOR - 1) / VECTOR * VECTOR;
        return torch.sigmoid(padDim(x, 1, to).contiguous()).narrow(1, 0, n);
    }

    /** x with rows of zeros appended up to a multiple of {@code multiple}; x itself where it is one. */
    private static Tensor padRows(Tensor x, int multiple) {
        long t = x.size(0), to = (t + multiple - 1) / multiple * multiple;
        return padDim(x, 0, Math.max(to, multiple));
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
