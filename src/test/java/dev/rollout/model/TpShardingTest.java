package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Which part of each parameter a rank holds ({@link TpLayout}, {@link TensorShard}) and that
 * loading narrows the full tensors into it; one process, no collectives (the forward over real
 * groups is TensorParallelTest's).
 */
class TpShardingTest {
    private static final Device CPU = new Device("cpu");
    private static final Path QWEN2 = Path.of("src/test/resources/fixtures/qwen2");   // tied, q/k/v bias, 4 heads, 2 KV heads, vocabulary 512
    private static final Path LLAMA = Path.of("src/test/resources/fixtures/llama");   // untied

    private static ModelConfig config(int heads, int kvHeads, int vocab, int inter) {
        return new ModelConfig("Qwen3ForCausalLM", vocab, 64, inter, 2, heads, kvHeads, 16, 1e-6,
                new ModelConfig.Rope("default", 1e6, 1, 1, 4, 8192), 256, true, false, true, "float32", List.of(1));
    }

    @ParameterizedTest(name = "{0} heads, {1} KV heads, TP={2}")
    @CsvSource({"8, 8, 4", "8, 2, 2", "8, 2, 4", "8, 2, 8", "16, 4, 8", "4, 1, 4"})
    void eachRanksQueryHeadsReadOnlyTheKvHeadsItHolds(int heads, int kvHeads, int size) {
        ModelConfig c = config(heads, kvHeads, 512, 128);
        int[] holders = new int[kvHeads];
        for (int r = 0; r < size; r++) {
            TpLayout l = new TpLayout(c, r, size);
            assertEquals(heads / size, l.heads());
            for (int q = l.firstHead(); q < l.firstHead() + l.heads(); q++) {
                int kv = q / c.queryGroupSize();  // the KV head query head q reads in the whole model
                assertTrue(kv >= l.firstKvHead() && kv < l.firstKvHead() + l.kvHeads(), "rank " + r + ": query head " + q + " reads KV head " + kv);
            }
            for (int kv = l.firstKvHead(); kv < l.firstKvHead() + l.kvHeads(); kv++) holders[kv]++;
            ModelConfig s = l.shardConfig();
            assertEquals(l.heads() / l.kvHeads(), s.queryGroupSize(), "whole GQA groups on each rank");
        }
        int replicas = Math.max(1, size / kvHeads);
        for (int kv = 0; kv < kvHeads; kv++) assertEquals(replicas, holders[kv], "KV head " + kv + " on " + replicas + " rank(s)");
    }

    @Test
    void theVocabularyIsPaddedToAMultipleOfTheRanksAndTheLastRowsArePadding() {
        ModelConfig c = config(4, 2, 509, 128);
        long real = 0;
        for (int r = 0; r < 4; r++) {
            TpLayout l = new TpLayout(c, r, 4);
            assertEquals(128, l.vocabPerRank());
            assertEquals(512, l.paddedVocab());
            assertEquals(r * 128L, l.firstToken());
            assertEquals(r < 3 ? 128 : 125, l.realTokens());
            real += l.realTokens();
        }
        assertEquals(509, real);
        TpLayout one = TpLayout.single(c);
        assertSame(c, one.shardConfig(), "one rank computes with the model's own config");
        assertEquals(509, one.realTokens());
    }

    @Test
    void aModelThatCannotBeSplitSaysWhy() {
        var e = assertThrows(IllegalArgumentException.class, () -> new TpLayout(config(6, 6, 512, 128), 0, 4));
        assertTrue(e.getMessage().contains("num_attention_heads 6") && e.getMessage().contains("tp_size 4"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new TpLayout(config(12, 3, 512, 128), 0, 2));
        assertTrue(e.getMessage().contains("num_key_value_heads 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new TpLayout(config(8, 8, 512, 100), 0, 8));
        assertTrue(e.getMessage().contains("intermediate_size 100"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new TpLayout(config(8, 8, 512, 128), 2, 2));
    }

    @Test
    void eachRankLoadsItsPartOfEveryFullTensor() throws IOException {
        CausalLm whole = CausalLm.load(QWEN2, ScalarType.Float, CPU);
        ParameterTable all = whole.parameters();
        for (int r = 0; r < 4; r++) {
            CausalLm lm = CausalLm.load(QWEN2, ScalarType.Float, CPU, Kernels.LIBTORCH, new ShardOnly(r, 4));
            ParameterTable t = lm.parameters();
            assertEquals(all.names(), t.names(), "the same Hugging Face names on every rank");
            for (String name : t.names()) {
                TensorShard s = t.shard(name);
                assertArrayEquals(all.shape(name), t.fullShape(name), name);
                assertTrue(torch.equal(s.narrow(all.get(name)), t.get(name)), name + " on rank " + r + " is " + s);
            }
            // 4 heads, 2 KV heads, 4 ranks: one query head each; KV head 0 on ranks 0 and 1, KV head 1 on ranks 2 and 3
            assertEquals(TensorShard.split(new long[] {64, 64}, 0, r * 16L, 16, r, 4), t.shard("model.layers.0.self_attn.q_proj.weight"));
            assertEquals(TensorShard.split(new long[] {32, 64}, 0, r / 2 * 16L, 16, r, 4), t.shard("model.layers.0.self_attn.k_proj.weight"));
            assertEquals(TensorShard.split(new long[] {32}, 0, r / 2 * 16L, 16, r, 4), t.shard("model.layers.0.self_attn.v_proj.bias"));
            assertEquals(TensorShard.split(new long[] {64, 64}, 1, r * 16L, 16, r, 4), t.shard("model.layers.1.self_attn.o_proj.weight"));
            assertEquals(TensorShard.split(new long[] {128, 64}, 0, r * 32L, 32, r, 4), t.shard("model.layers.1.mlp.up_proj.weight"));
            assertEquals(TensorShard.split(new long[] {64, 128}, 1, r * 32L, 32, r, 4), t.shard("model.layers.1.mlp.down_proj.weight"));
            assertEquals(TensorShard.split(new long[] {512, 64}, 0, r * 128L, 128, r, 4), t.shard("model.embed_tokens.weight"));
            assertTrue(t.shard("model.norm.weight").replicated());
            assertTrue(t.shard("model.layers.0.input_layernorm.weight").replicated());
            assertEquals(1, lm.shardConfig().numHeads());
            assertEquals(1, lm.shardConfig().numKvHeads());
            lm.releaseWeights();
        }
    }

    @Test
    void tiedEmbeddingsAreOneShardAndPaddingRowsStayZero(@TempDir Path dir) throws IOException {
        RandomCheckpoint.write(dir, new RandomCheckpoint.Spec(509, 64, 128, 1, 4, 2, 16, 64, List.of(1), 0.15), 3);
        CausalLm whole = CausalLm.load(dir, ScalarType.Float, CPU);
        CausalLm last = CausalLm.load(dir, ScalarType.Float, CPU, Kernels.LIBTORCH, new ShardOnly(3, 4));
        Tensor embed = last.parameters().get("model.embed_tokens.weight");
        assertEquals(125, embed.size(0), "the real rows of the last rank");
        assertTrue(torch.equal(whole.parameters().get("model.embed_tokens.weight").narrow(0, 384, 125), embed));
        assertTrue(!last.parameters().contains("lm_head.weight"), "tied: the head is the embedding");
        // the rank's whole (128, hidden) shard: 125 real rows, then 3 rows of padding that no id reaches and whose logits are cut off
        assertEquals(128L * 64 * 4, last.weightBytes() - weightBytesBesidesEmbedding(last));
        assertEquals(whole.parameterCount(), sumFull(last.parameters()), "the table still names every full parameter");
    }

    private static long weightBytesBesidesEmbedding(CausalLm lm) {
        long total = 0;
        ParameterTable t = lm.parameters();
        for (String name : t.names()) if (!name.equals("model.embed_tokens.weight")) total += t.get(name).nbytes();
        return total;
    }

    private static long sumFull(ParameterTable t) {
        long total = 0;
        for (String name : t.names()) {
            long n = 1;
            for (long d : t.fullShape(name)) n *= d;
            total += n;
        }
        return total;
    }

    @Test
    void copyFullNarrowsAFullTensorAndRefusesAWrongShape() throws IOException {
        CausalLm lm = CausalLm.load(LLAMA, ScalarType.Float, CPU, Kernels.LIBTORCH, new ShardOnly(1, 2));
        ParameterTable t = lm.parameters();
        String down = "model.layers.0.mlp.down_proj.weight";
        Tensor full = torch.arange(new org.bytedeco.pytorch.Scalar(64 * 128)).to(ScalarType.Float).view(64, 128);
        t.copyFull(down, full);
        assertTrue(torch.equal(full.narrow(1, 64, 64), t.get(down)), "rank 1 of 2 holds input columns 64..127");
        assertNull(t.mismatch(down, new long[] {64, 128}));
        var e = assertThrows(IllegalArgumentException.class, () -> t.copyFull(down, full.narrow(1, 0, 64)));
        assertTrue(e.getMessage().contains("[64, 128]"), e.getMessage());
        String lmHead = "lm_head.weight";
        assertEquals(TensorShard.split(new long[] {512, 64}, 0, 256, 256, 1, 2), t.shard(lmHead), "untied: a head of its own, split the same way");
    }

    @Test
    void atOneRankEveryShardIsTheWholeParameter() throws IOException {
        CausalLm lm = CausalLm.load(QWEN2, ScalarType.Float, CPU);
        ParameterTable t = lm.parameters();
        assertSame(TpGroup.SINGLE, lm.tpGroup());
        assertSame(lm.config(), lm.shardConfig());
        for (String name : t.names()) {
            assertTrue(t.shard(name).replicated(), name);
            assertArrayEquals(t.shape(name), t.fullShape(name), name);
        }
        Map<String, String> sums = t.checksums();
        assertEquals(t.names().size(), sums.size());
    }

    @Test
    void cudaGraphsAreRefusedAboveOneRank() {
        Kernels graphs = new Kernels(DecodeAttention.PAGED_NATIVE, false, false, false, false, true, false, false, List.of());
        var e = assertThrows(IllegalArgumentException.class,
                () -> CausalLm.load(QWEN2, ScalarType.Float, CPU, graphs, new ShardOnly(0, 2)));
        assertTrue(e.getMessage().contains("CUDA graphs") && e.getMessage().contains("tp_size 2"), e.getMessage());
    }
}
