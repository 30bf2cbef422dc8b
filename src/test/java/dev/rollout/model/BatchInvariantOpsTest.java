package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIfSystemProperty;

/**
 * ADR 0026's kernel-level cases, on whatever CPU and BLAS run the tests: one row's bits from
 * {@link BatchInvariantOps} do not depend on how many rows share the call or on its place among
 * them, and a decoded query's attention equals its row in a prefill. DeterministicModeTest
 * catches a failure of these only as a last-bit difference in some logprob; this names the op.
 */
@DisabledIfSystemProperty(named = "rollout.test.device", matches = "cuda.*")
class BatchInvariantOpsTest {
    static final Device CPU = new Device("cpu");

    static Tensor random(long seed, long... shape) {
        long n = 1;
        for (long s : shape) n *= s;
        float[] v = new float[Math.toIntExact(n)];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextDouble() * 4 - 2);
        return Torch.floats(v, CPU).view(shape);
    }

    static int[] bits(Tensor t) {
        float[] f = Torch.toFloats(t.contiguous());
        int[] b = new int[f.length];
        for (int i = 0; i < f.length; i++) b[i] = Float.floatToIntBits(f[i]);
        return b;
    }

    @Test
    void aGemmRowIsTheSameBitsAtEveryPlaceAmongAnyNumberOfRows() {
        // the fixtures' shapes and a few larger; OpenBLAS's Haswell kernel gave a row other bits by its place among 32
        for (int[] kn : new int[][] {{64, 1}, {64, 8}, {64, 64}, {64, 128}, {64, 256}, {64, 512}, {128, 64}, {32, 64}, {896, 1152}}) {
            int k = kn[0], n = kn[1];
            Tensor row = random(1, 1, k), w = random(2, n, k), bias = random(3, n);
            int[] alone = bits(BatchInvariantOps.linear(row, w, bias));
            for (int rows : new int[] {2, 7, 32, 33, 64}) {
                for (int at = 0; at < rows; at += rows > 8 ? 5 : 1) {
                    Tensor x = random(100L * rows + at, rows, k);
                    x.narrow(0, at, 1).copy_(row);
                    assertArrayEquals(alone, bits(BatchInvariantOps.linear(x, w, bias).narrow(0, at, 1)),
                            "K " + k + ", N " + n + ": the row at " + at + " of " + rows);
                }
            }
        }
    }

    @Test
    void aSequencesAttentionIsTheSameBitsBesideOthersAndDecodedAsInItsPrefill() throws Exception {
        ModelConfig c = ModelConfig.read(Path.of("src/test/resources/fixtures/qwen2"));   // 4 heads over 2 KV heads, d 16
        int nH = c.numHeads(), nKv = c.numKvHeads(), d = c.headDim(), len = 40;
        Tensor q = random(11, 1, len, nH, d), k = random(12, 1, len, nKv, d), v = random(13, 1, len, nKv, d);
        Tensor positions = torch.arange(new Scalar(len), Torch.options(ScalarType.Long, CPU)).view(1, len);
        int[] alone = bits(BatchInvariantOps.attend(q, positions, k, v, c));                 // (1, len, nH, d)

        // beside others: more sequences, more (padding) queries, a longer gathered context
        for (int[] shape : new int[][] {{2, 40, 47}, {5, 48, 90}, {64, 70, 40}}) {
            int p = shape[0], mq = shape[1], ml = shape[2], at = p / 2;
            Tensor qb = random(20 + p, p, mq, nH, d), kb = random(30 + p, p, ml, nKv, d), vb = random(40 + p, p, ml, nKv, d);
            qb.narrow(0, at, 1).narrow(1, 0, len).copy_(q);
            kb.narrow(0, at, 1).narrow(1, 0, len).copy_(k);
            vb.narrow(0, at, 1).narrow(1, 0, len).copy_(v);
            Tensor pos = torch.arange(new Scalar(mq), Torch.options(ScalarType.Long, CPU)).view(1, mq).expand(p, mq).contiguous();
            pos.narrow(0, at, 1).narrow(1, len, mq - len).fill_(new Scalar(len - 1));       // its padding queries
            assertArrayEquals(alone, bits(BatchInvariantOps.attend(qb, pos, kb, vb, c).narrow(0, at, 1).narrow(1, 0, len)),
                    p + " sequences, " + mq + " queries, " + ml + " keys");
        }

        // decode: one query alone, against its row in the prefill
        for (int i : new int[] {0, 6, 31, 32, len - 1}) {
            Tensor decoded = BatchInvariantOps.attend(q.narrow(1, i, 1), positions.narrow(1, i, 1), k, v, c);
            assertArrayEquals(Arrays.copyOfRange(alone, i * nH * d, (i + 1) * nH * d), bits(decoded), "position " + i + ", decoded");
        }
    }
}
