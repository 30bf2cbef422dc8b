package dev.rollout.model;

import dev.rollout.dist.WeightGroupOp;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.model.ForwardBatchWire.Encoded;
import dev.rollout.model.ForwardBatchWire.Header;
import dev.rollout.model.ForwardBatchWire.Kind;
import dev.rollout.model.TpScenario.Work;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A step encoded for the other tensor-parallel ranks and decoded there is the step that was sent:
 * every tensor with its dtype, shape and values, every int, and the nulls where the batch has
 * none, for the batches ModelRunner builds (TpScenario's builder follows it): decode-only in both
 * decode layouts, prefill-only in one group and in several, mixed, with rows given as embeddings.
 */
class ForwardBatchWireTest {
    private static final Device CPU = new Device("cpu");
    private static final int HIDDEN = 8;
    /** The prompts, each with three generated tokens after it, so that any position up to there has a token. */
    private static List<List<Integer>> seqs() {
        List<List<Integer>> seqs = new ArrayList<>();
        for (int[] p : TpScenario.PROMPTS) {
            List<Integer> s = new ArrayList<>();
            for (int id : p) s.add(id);
            for (int k = 0; k < 3; k++) s.add(400 + k);
            seqs.add(s);
        }
        return seqs;
    }

    private static List<Work> decodes() {
        List<Work> w = new ArrayList<>();
        for (int i = 0; i < TpScenario.PROMPTS.length; i++) w.add(new Work(i, TpScenario.PROMPTS[i].length + 1, 1));
        return w;
    }

    @ParameterizedTest
    @EnumSource(value = DecodeAttention.class, names = {"GATHER", "PAGED_TORCH"})
    void aDecodeOnlyStepComesBackExactly(DecodeAttention layout) {
        ForwardBatch b = TpScenario.batch(decodes(), seqs(), layout, 0);
        assertNotNull(b.decode());
        assertEquals(layout.paged(), b.decode().blockTable() != null, "the builder's layout");
        roundTrip(b, List.of(Torch.longs(new long[] {0, 1, 2}, CPU)));
    }

    @Test
    void aPrefillOnlyStepInOneGroupOrInSeveralComesBackExactly() {
        // the first chunks of the three prompts; prompt 2's first positions are embeddings
        List<Work> works = List.of(new Work(0, 0, 5), new Work(1, 0, 8), new Work(2, 0, 5));
        ForwardBatch one = TpScenario.batch(works, seqs(), DecodeAttention.GATHER, HIDDEN, false);
        ForwardBatch each = TpScenario.batch(works, seqs(), DecodeAttention.GATHER, HIDDEN, true);
        assertNull(one.decode());
        assertEquals(1, one.prefills().size());
        assertEquals(3, each.prefills().size());
        assertNotNull(one.embeds());
        roundTrip(one, List.of(Torch.longs(new long[] {17}, CPU)));
        roundTrip(each, List.of());
    }

    @ParameterizedTest
    @EnumSource(value = DecodeAttention.class, names = {"GATHER", "PAGED_TORCH"})
    void aMixedStepWithEmbeddingsComesBackExactly(DecodeAttention layout) {
        // prompt 0 continues its prefill over a cached chunk, prompt 1 starts, prompt 2 decodes
        List<Work> works = List.of(new Work(0, 5, 4), new Work(2, 5, 1), new Work(1, 0, 6));
        ForwardBatch b = TpScenario.batch(works, seqs(), layout, HIDDEN, true);
        assertNotNull(b.decode());
        assertEquals(2, b.prefills().size());
        assertNull(b.embeds(), "prompt 2 decodes: none of its embedded positions is computed");
        // and a step that computes them: the chunk of prompt 2 that starts at 0
        ForwardBatch e = TpScenario.batch(List.of(new Work(0, 5, 4), new Work(2, 0, 3), new Work(1, 13, 1)), seqs(), layout, HIDDEN, false);
        assertArrayEquals(new long[] {4, 5}, Torch.toLongs(e.embeds().rows()));
        roundTrip(b, List.of(Torch.longs(new long[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, CPU), Torch.longs(new long[] {3, 4}, CPU)));
        roundTrip(e, List.of(Torch.longs(new long[] {7}, CPU)));
    }

    @Test
    void embeddingsKeepTheirDtypeAndExactValues() {
        ForwardBatch f = TpScenario.batch(List.of(new Work(2, 0, 5)), seqs(), DecodeAttention.GATHER, HIDDEN);
        ForwardBatch.Embeds e = f.embeds();
        for (ScalarType t : new ScalarType[] {ScalarType.BFloat16, ScalarType.Half}) {
            ForwardBatch b = new ForwardBatch(f.inputIds(), f.positions(), f.slotMapping(), f.decode(), f.prefills(),
                    new ForwardBatch.Embeds(e.rows(), e.values().to(t)));
            roundTrip(b, List.of());
        }
    }

    @Test
    void aWeightsMessageNamesEachParameterAndItsFullShapeExactly() {
        // names of every length around a word, one not ASCII; shapes of 0 to 3 dims
        List<ForwardBatchWire.Parameter> ps = List.of(
                new ForwardBatchWire.Parameter("model.embed_tokens.weight", new long[] {151936, 128}),
                new ForwardBatchWire.Parameter("12345678", new long[] {7}),
                new ForwardBatchWire.Parameter("model.layers.0.self_attn.q_norm.weight", new long[] {}),
                new ForwardBatchWire.Parameter("gewicht.ä€", new long[] {2, 3, 4}));
        Encoded e = ForwardBatchWire.encodeParameters(9, ps);
        assertEquals(Kind.WEIGHTS, e.header().kind());
        assertEquals(9, e.header().number());
        assertEquals(e.body().length, e.header().bodyWords());
        Header back = Header.read(e.header().words());
        assertEquals(Kind.WEIGHTS, back.kind());
        List<ForwardBatchWire.Parameter> decoded = ForwardBatchWire.decodeParameters(e.body());
        assertEquals(ps.size(), decoded.size());
        for (int i = 0; i < ps.size(); i++) {
            assertEquals(ps.get(i).name(), decoded.get(i).name());
            assertArrayEquals(ps.get(i).shape(), decoded.get(i).shape());
        }
        long[] cut = java.util.Arrays.copyOf(e.body(), e.body().length + 1);
        assertThrows(IllegalStateException.class, () -> ForwardBatchWire.decodeParameters(cut), "a body longer than what it names");
    }

    @Test
    void aGroupMessageCarriesEachOperationExactly() {
        WeightGroupOp.Spec spec = new WeightGroupOp.Spec("fe80::1%eth0", 29500, 3, 9, "grüppe-1", "gloo");
        List<WeightGroupOp> ops = List.of(
                WeightGroupOp.join(spec, 600_000),
                WeightGroupOp.receive("g", List.of(new WeightGroupOp.Announced("model.embed_tokens.weight", "bfloat16", new long[] {151936, 128}),
                        new WeightGroupOp.Announced("scale", "float32", new long[] {})), true, 1),
                WeightGroupOp.receive("g", List.of(), false, 5),
                WeightGroupOp.leave("weight_update_group", 42));
        for (WeightGroupOp op : ops) {
            Encoded e = ForwardBatchWire.encodeGroupOp(3, op);
            assertEquals(Kind.GROUP, Header.read(e.header().words()).kind());
            assertEquals(e.body().length, e.header().bodyWords());
            WeightGroupOp back = ForwardBatchWire.decodeGroupOp(e.body());
            assertEquals(op.op(), back.op());
            assertEquals(op.groupName(), back.groupName());
            assertEquals(op.spec(), back.spec());
            assertEquals(op.timeout(), back.timeout());
            assertEquals(op.flattened(), back.flattened());
            assertEquals(op.tensors().size(), back.tensors().size());
            for (int i = 0; i < op.tensors().size(); i++) {
                assertEquals(op.tensors().get(i).name(), back.tensors().get(i).name());
                assertEquals(op.tensors().get(i).dtype(), back.tensors().get(i).dtype());
                assertArrayEquals(op.tensors().get(i).shape(), back.tensors().get(i).shape());
            }
            long[] cut = java.util.Arrays.copyOf(e.body(), e.body().length - 1);
            assertThrows(IllegalStateException.class, () -> ForwardBatchWire.decodeGroupOp(cut), "a body that ends early");
        }
    }

    @Test
    void theHeaderNamesItsVersionAndABuildOfAnotherIsRefused() {
        ForwardBatch b = TpScenario.batch(decodes(), seqs(), DecodeAttention.GATHER, 0);
        Encoded enc = ForwardBatchWire.encode(7, b, List.of());
        long[] w = enc.header().words();
        assertEquals(ForwardBatchWire.HEADER_WORDS, w.length);
        assertEquals(enc.header(), Header.read(w));
        assertEquals(enc.body().length, enc.header().bodyWords());
        w[1] = ForwardBatchWire.VERSION + 1;
        IllegalStateException v = assertThrows(IllegalStateException.class, () -> Header.read(w));
        assertTrue(v.getMessage().contains("version " + (ForwardBatchWire.VERSION + 1)), v.getMessage());
        long[] zeros = new long[ForwardBatchWire.HEADER_WORDS];   // what a receiver holds if nothing was written
        assertThrows(IllegalStateException.class, () -> Header.read(zeros));
        long[] kind = enc.header().words();
        kind[2] = 99;
        assertTrue(assertThrows(IllegalStateException.class, () -> Header.read(kind)).getMessage().contains("kind 99"));
        assertEquals(new Header(Kind.STOP, 8, 0, 0, 0), Header.read(ForwardBatchWire.signal(Kind.STOP, 8).words()));
    }

    @Test
    void aTensorOfAnotherDtypeIsRefusedRatherThanSentAsAnother() {
        ForwardBatch b = TpScenario.batch(decodes(), seqs(), DecodeAttention.GATHER, 0);
        ForwardBatch ints = new ForwardBatch(b.inputIds().to(ScalarType.Int), b.positions(), b.slotMapping(), b.decode(), b.prefills());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ForwardBatchWire.encode(1, ints, List.of()));
        assertTrue(e.getMessage().contains("inputIds"), e.getMessage());
    }

    @Test
    void aBodyThatDoesNotMatchItsDirectoryIsRefused() {
        ForwardBatch b = TpScenario.batch(decodes(), seqs(), DecodeAttention.GATHER, 0);
        Encoded enc = ForwardBatchWire.encode(1, b, List.of());
        long[] longer = java.util.Arrays.copyOf(enc.body(), enc.body().length + 1);
        Header h = new Header(Kind.STEP, 1, enc.header().directoryWords(), longer.length, 0);
        assertThrows(IllegalStateException.class, () -> ForwardBatchWire.decode(h, Torch.longs(longer, CPU), null, CPU));
        // and one shorter than its directory says: refused by name, not an index error inside libtorch
        long[] shorter = java.util.Arrays.copyOf(enc.body(), enc.body().length - 1);
        Header hs = new Header(Kind.STEP, 1, enc.header().directoryWords(), shorter.length, 0);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> ForwardBatchWire.decode(hs, Torch.longs(shorter, CPU), null, CPU));
        assertTrue(e.getMessage().contains("more words than its body has"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> ForwardBatchWire.decode(enc.header(), Torch.longs(shorter, CPU), null, CPU),
                "a body of another size than its header's");
    }

    /** Encodes, decodes as a worker would (from tensors of the words) and compares everything. */
    private static void roundTrip(ForwardBatch b, List<Tensor> logitsRows) {
        Encoded enc = ForwardBatchWire.encode(3, b, logitsRows);
        Header h = Header.read(enc.header().words());
        assertEquals(Kind.STEP, h.kind());
        assertEquals(3, h.number());
        Tensor floats = enc.floats().length == 0 ? null : Torch.floats(enc.floats(), CPU);
        ForwardBatchWire.Step got = ForwardBatchWire.decode(h, Torch.longs(enc.body(), CPU), floats, CPU);
        ForwardBatch d = got.batch();
        same("inputIds", b.inputIds(), d.inputIds());
        same("positions", b.positions(), d.positions());
        same("slotMapping", b.slotMapping(), d.slotMapping());
        assertEquals(b.decode() == null, d.decode() == null, "decode");
        if (b.decode() != null) {
            ForwardBatch.DecodeGroup x = b.decode(), y = d.decode();
            assertEquals(x.batch(), y.batch());
            assertEquals(x.maxContext(), y.maxContext());
            assertEquals(x.maxBlocks(), y.maxBlocks());
            same("decode.tokenIndex", x.tokenIndex(), y.tokenIndex());
            same("decode.slots", x.slots(), y.slots());
            same("decode.mask", x.mask(), y.mask());
            same("decode.blockTable", x.blockTable(), y.blockTable());
            same("decode.seqLens", x.seqLens(), y.seqLens());
        }
        assertEquals(b.prefills().size(), d.prefills().size());
        for (int i = 0; i < b.prefills().size(); i++) {
            ForwardBatch.PrefillGroup x = b.prefills().get(i), y = d.prefills().get(i);
            assertEquals(x.chunks(), y.chunks());
            assertEquals(x.maxQuery(), y.maxQuery());
            assertEquals(x.maxContext(), y.maxContext());
            same("prefill.rows", x.rows(), y.rows());
            same("prefill.queryPos", x.queryPos(), y.queryPos());
            same("prefill.slots", x.slots(), y.slots());
            same("prefill.valid", x.valid(), y.valid());
            same("prefill.targets", x.targets(), y.targets());
        }
        assertEquals(b.embeds() == null, d.embeds() == null, "embeds");
        if (b.embeds() != null) {
            same("embeds.rows", b.embeds().rows(), d.embeds().rows());
            same("embeds.values", b.embeds().values(), d.embeds().values());
        }
        assertEquals(logitsRows.size(), got.logitsRows().size());
        for (int i = 0; i < logitsRows.size(); i++) same("logits rows", logitsRows.get(i), got.logitsRows().get(i));
    }

    /** The same presence, dtype, shape and values, bit for bit. */
    private static void same(String name, Tensor want, Tensor got) {
        assertEquals(want == null, got == null, name + " present");
        if (want == null) return;
        assertEquals(want.scalar_type().intern(), got.scalar_type().intern(), name + " dtype");
        assertArrayEquals(want.sizes().vec().get(), got.sizes().vec().get(), name + " shape");
        assertTrue(want.equal(got), name + " values");
    }
}
