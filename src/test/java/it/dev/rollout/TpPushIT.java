package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.RolloutClient;
import dev.rollout.client.Sampling;
import dev.rollout.engine.LlmEngine;
import dev.rollout.model.Safetensors;
import jakarta.json.JsonObject;
import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A tensor-parallel trainer of 2 and 4 processes pushes a checkpoint it holds in shards: rank 0
 * alone sends, one HTTP update per bucket, and the server then holds exactly the unsharded
 * weights (every parameter's checksum) and generates what they generate.
 */
@ExtendWith(RestoresServedWeights.class)
class TpPushIT {
    @ParameterizedTest(name = "{0} ranks")
    @ValueSource(ints = {2, 4})
    void rankZeroAlonePushesTheGatheredWeightsOneUpdatePerBucket(int world) throws Exception {
        Path ckpt = Checkpoints.other(40 + world);
        String version = "tp-" + world;
        long bucketBytes = 1 << 20;
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        List<Process> ranks = new ArrayList<>();
        List<Path> logs = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            Path log = Files.createTempFile("tp-rank" + r + "-", ".log");
            logs.add(log);
            ranks.add(new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g",
                    ServerProcessIT.SECOND_SERVER_JVM_OPTIONS,
                    "-cp", System.getProperty("java.class.path"), TpPushWorker.class.getName(), String.valueOf(r), String.valueOf(world),
                    String.valueOf(port), ckpt.toString(), Http.BASE, Http.ADMIN_KEY, String.valueOf(bucketBytes), version)
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start());
        }
        for (int r = 0; r < world; r++) {
            Process p = ranks.get(r);
            if (!p.waitFor(180, TimeUnit.SECONDS)) {
                ranks.forEach(Process::destroyForcibly);
                throw new AssertionError("rank " + r + " did not finish in 180 s:\n" + Files.readString(logs.get(r)));
            }
            assertEquals(0, p.exitValue(), "rank " + r + " failed:\n" + Files.readString(logs.get(r)));
        }
        Matcher m = Pattern.compile("PUSHED rank=0 buckets=(\\d+) updates=(\\d+) tensors=(\\d+) version=(\\S+)").matcher(Files.readString(logs.get(0)));
        assertTrue(m.find(), "rank 0's report:\n" + Files.readString(logs.get(0)));
        int buckets = Integer.parseInt(m.group(1));
        assertTrue(buckets > 2, "several buckets, not " + buckets);
        assertEquals(buckets, Integer.parseInt(m.group(2)), "one HTTP update per bucket");
        int params = Safetensors.readHeader(ckpt.resolve("model.safetensors")).size();
        assertEquals(params, Integer.parseInt(m.group(3)), "every parameter once");
        assertEquals(version, m.group(4));
        for (int r = 1; r < world; r++)
            assertTrue(Files.readString(logs.get(r)).contains("PUSHED rank=" + r + " buckets=" + buckets + " updates=0 "),
                    "rank " + r + " gathers every bucket and sends nothing:\n" + Files.readString(logs.get(r)));

        LlmEngine reference = Checkpoints.engine(ckpt);
        JsonObject served = Http.admin("/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0).getJsonObject("checksums");
        Map<String, String> expected = reference.model().parameters().checksums();
        assertEquals(expected.size(), served.size());
        expected.forEach((name, sum) -> assertEquals(sum, served.getString(name), name + ": the unsharded weights"));
        try (RolloutClient c = RolloutClient.connect(URI.create(Http.BASE))) {
            var g = c.generate(Checkpoints.PROMPT, Sampling.greedy(12));
            assertEquals(version, g.weightVersion());
            assertArrayEquals(Checkpoints.greedy(reference, 12), g.outputIds());
        }
    }
}
