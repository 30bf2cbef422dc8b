package dev.rollout.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Keeps the GPU benchmark harness working between GPU sessions: EngineBench runs its workloads on
 * the CPU with a tiny dummy model and reports every generated token. (No timing is asserted.)
 */
class EngineBenchTest {
    @Test
    void workloadsRunAndCountEveryToken(@TempDir Path dir) throws Exception {
        List<JsonObject> results = run(dir, "qwen3", "grpo:3:2:20:8", "decode:16:6", "sweep:16:6:1,3");
        assertEquals(5, results.size(), results.toString());
        JsonObject grpo = results.get(1);
        assertEquals(6, grpo.get("finished").getAsInt());
        assertEquals(grpo.get("expected").getAsLong(), grpo.get("generated").getAsLong());
        for (JsonObject r : results.subList(2, 5)) {
            assertEquals(5, r.get("decode_steps").getAsInt(), r.toString());  // the first token comes with the prefill
            assertTrue(r.get("roofline_fraction").getAsDouble() > 0);
        }
    }

    /** A mixture of experts with every request's routed experts kept, as the GPU measures R3's cost (on against off). */
    @Test
    void aMixtureOfExpertsRunsWithRoutedExperts(@TempDir Path dir) throws Exception {
        List<JsonObject> results = run(dir, "qwen3_moe", "--routed-experts", "grpo:2:2:12:5", "decode:8:4");
        assertEquals(3, results.size(), results.toString());
        JsonObject setup = results.get(0);
        assertTrue(setup.get("routed_experts").getAsBoolean(), setup.toString());
        // at batch 1 the floor reads 2 of the 8 experts of its two MoE layers: (64 x 32 x 3 x 4 bytes) x 8 x 2 of them in all
        double experts = 2 * 8 * 3 * 32 * 64 * 4;
        assertEquals(experts, setup.get("expert_bytes").getAsDouble(), 0.5, setup.toString());
        assertEquals(setup.get("weight_bytes").getAsDouble() - experts * 6 / 8, setup.get("batch1_weight_bytes").getAsDouble(), 1,
                setup.toString());
        assertEquals(results.get(1).get("expected").getAsLong(), results.get(1).get("generated").getAsLong());
    }

    /** The deterministic arithmetic (issue #21), as the GPU will measure its overhead against the default. */
    @Test
    void theDeterministicArithmeticRunsAndSaysSo(@TempDir Path dir) throws Exception {
        List<JsonObject> results = run(dir, "qwen2", "--deterministic", "grpo:2:2:12:5", "sweep:8:4:1,2");
        assertEquals(4, results.size(), results.toString());
        assertTrue(results.get(0).get("deterministic").getAsBoolean(), results.get(0).toString());
        assertEquals(results.get(1).get("expected").getAsLong(), results.get(1).get("generated").getAsLong());
    }

    /**
     * Issue #22's per-step cost of constraints: every request of csweep is constrained to the tool-call
     * lines over the real Qwen3 vocabulary and still runs all its tokens (the constraint never ends
     * it early), so its steps compare with sweep's one for one.
     */
    @Test
    void constrainedRequestsRunTheirTokensAsTheUnconstrainedDo(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("config.json"), Files.readString(Path.of("src/test/resources/fixtures/qwen3/config.json"))
                .replace("\"vocab_size\": 512", "\"vocab_size\": 151936"));
        List<JsonObject> results = run(dir, null, "sweep:12:40:3", "csweep:12:40:3");
        assertEquals(3, results.size(), results.toString());
        for (JsonObject r : results.subList(1, 3)) {
            assertEquals(39, r.get("decode_steps").getAsInt(), r.toString());
            assertEquals(0, r.get("cut_short").getAsInt(), r.toString());
            assertEquals(0, r.get("broke_constraint").getAsInt(), r.toString());
        }
        assertEquals("csweep", results.get(2).get("what").getAsString());
    }

    /** EngineBench on a dummy model of the fixture's config (of the one in dir when null), on the CPU in float32: its RESULT lines. */
    private static List<JsonObject> run(Path dir, String fixture, String... args) throws Exception {
        if (fixture != null) Files.copy(Path.of("src/test/resources/fixtures", fixture, "config.json"), dir.resolve("config.json"));
        List<String> all = new java.util.ArrayList<>(List.of("--model", dir.toString(), "--dummy", "--device", "cpu", "--dtype", "float32"));
        all.addAll(List.of(args));
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream old = System.out;
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            EngineBench.main(all.toArray(new String[0]));
        } finally {
            System.setOut(old);
        }
        return buf.toString(StandardCharsets.UTF_8).lines().filter(l -> l.startsWith("RESULT "))
                .map(l -> JsonParser.parseString(l.substring(7)).getAsJsonObject()).toList();
    }

    @Test
    void promptsAreTheOnesTheTransformersBaselineMakes() {
        // bench/hf_cb.py: prompts(2, 5, 1234, 151936) gives the same ids
        int[][] p = Prompts.make(2, 5, 1234, 151936);
        assertEquals(List.of(62195, 95964, 148946, 19579, 44989), Arrays.stream(p[0]).boxed().toList());
        assertEquals(List.of(53529, 61430, 68583, 22123, 29355), Arrays.stream(p[1]).boxed().toList());
    }
}
