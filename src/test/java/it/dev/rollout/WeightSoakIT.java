package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.Sequence;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.model.Safetensors;
import dev.rollout.model.TensorPayloads;
import dev.rollout.safetensors.SafetensorsWriter;
import jakarta.json.JsonObject;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The soak at CI scale: 200 consecutive weight pushes, cycling through the transports (base64
 * safetensors, flattened bucket, raw safetensors body) and the ways an update meets running
 * requests (wait, pause in place, abort), under 16 streams that never stop generating; then 100
 * release/resume cycles. After every push the server must generate from exactly the pushed
 * weights: its logprob on a fixed prompt equals that of this JVM's engine with the same update
 * applied, and the pushed tensor's checksum matches. Counts hangs, failures, heap and RSS growth.
 * The sizes can be raised with -Dsoak.pushes, -Dsoak.streams and -Dsoak.cycles.
 */
class WeightSoakIT {
    static final int PUSHES = Integer.getInteger("soak.pushes", 200);
    static final int STREAMS = Integer.getInteger("soak.streams", 16);
    static final int CYCLES = Integer.getInteger("soak.cycles", 100);
    static final String NORM = "model.norm.weight";
    static String originalDir;

    @BeforeAll
    static void ready() {
        Http.awaitReady();
        originalDir = Http.get("/get_model_info").object().getString("model_path");
    }

    @AfterAll
    static void restore() {
        Http.admin("/continue_generation", "{}");
        Http.resumeReleased();
        assertEquals(200, Http.admin("/update_weights_from_disk",
                "{\"model_path\": \"" + originalDir + "\", \"weight_version\": \"default\"}").status());
    }

    /** model.norm.weight for push i: a different scale each time, so every push moves the logits. */
    static byte[] normBf16(int i, int hidden) {
        ByteBuffer b = ByteBuffer.allocate(2 * hidden).order(ByteOrder.LITTLE_ENDIAN);
        for (int k = 0; k < hidden; k++) b.putShort(bf16((float) (0.5 + 0.01 * ((i * 7 + k) % 97))));
        return b.array();
    }

    static short bf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    static byte[] safetensors(String name, byte[] bf16, int hidden) throws Exception {
        Path tmp = Files.createTempFile("soak", ".safetensors");
        Safetensors.write(tmp, Map.of(name, new SafetensorsWriter.Tensor("BF16", new long[] {hidden}, ByteBuffer.wrap(bf16))), Map.of());
        byte[] out = Files.readAllBytes(tmp);
        Files.delete(tmp);
        return out;
    }

    @Test
    void pushesUnderLoadThenReleaseResumeCycles() throws Exception {
        int hidden = dev.rollout.runtime.DefaultModel.SPEC.hiddenSize();
        LlmEngine reference = Checkpoints.engine(Path.of(originalDir));
        long rss0 = rssBytes(), heap0 = heap("memory_usedHeap_bytes");
        long warmPushes = 0, warmCycles = 0;   // RSS once thread pools, JIT and allocator have warmed up

        AtomicBoolean stop = new AtomicBoolean();
        AtomicInteger completed = new AtomicInteger(), aborted = new AtomicInteger();
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        List<Thread> streams = new ArrayList<>();
        for (int s = 0; s < STREAMS; s++) {
            Thread t = new Thread(() -> stream(stop, completed, aborted, failures), "soak-stream-" + s);
            t.start();
            streams.add(t);
        }

        long t0 = System.nanoTime();
        int checked = 0;
        for (int i = 0; i < PUSHES; i++) {
            // warm: Liberty's pool grows a thread per request up to coreThreads (512), each with its stack
            if (i == PUSHES / 2) warmPushes = outsideHeap();
            String version = "soak-" + i;
            byte[] norm = normBf16(i, hidden);
            byte[] blob = safetensors(NORM, norm, hidden);
            Http.Reply r;
            switch (i % 4) {
                case 0 -> r = Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                        + Base64.getEncoder().encodeToString(blob) + "\"], \"weight_version\": \"" + version + "\"}");
                case 1 -> {
                    assertEquals(200, Http.admin("/pause_generation", "{\"mode\": \"in_place\"}").status());
                    r = Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                            + Base64.getEncoder().encodeToString(norm) + "\"], \"load_format\": \"flattened_bucket\", "
                            + "\"flattened_bucket_metadata\": [{\"name\": \"" + NORM + "\", \"dtype\": \"bfloat16\", \"shape\": [" + hidden
                            + "], \"start_idx\": 0, \"end_idx\": " + norm.length + "}], \"weight_version\": \"" + version + "\"}");
                    assertEquals(200, Http.admin("/continue_generation", "{}").status());
                }
                case 2 -> r = Http.send(HttpRequest.newBuilder(URI.create(Http.BASE + "/update_weights_from_tensor?weight_version=" + version))
                        .header("Content-Type", "application/octet-stream").header("Authorization", "Bearer " + Http.ADMIN_KEY)
                        .POST(HttpRequest.BodyPublishers.ofByteArray(blob)));
                default -> r = Http.admin("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\""
                        + Base64.getEncoder().encodeToString(blob) + "\"], \"abort_all_requests\": true, \"weight_version\": \"" + version + "\"}");
            }
            assertEquals(200, r.status(), "push " + i + ": " + r.body());

            // the pushed weights are the ones generating: same logprob as the reference with the same update
            Checkpoints.copyInto(reference, TensorPayloads.fromSafetensors(ByteBuffer.allocateDirect(blob.length).put(blob).flip()));
            JsonObject out = Http.post("/generate", "{\"input_ids\": [9707, 11, 1879], \"return_logprob\": true, "
                    + "\"sampling_params\": {\"max_new_tokens\": 1, \"temperature\": 0}}").object();
            assertEquals(version, out.getJsonObject("meta_info").getString("weight_version"));
            double served = out.getJsonObject("meta_info").getJsonArray("output_token_logprobs").getJsonArray(0).getJsonNumber(0).doubleValue();
            SequenceOutput expected = referenceLogprob(reference);
            assertEquals(expected.outputIds()[0], out.getJsonArray("output_ids").getInt(0), "push " + i + ": greedy token");
            assertEquals(expected.outputLogprobs().get(0).logprob(), served, 1e-4, "push " + i + ": logprob on the fixed prompt");
            if (i % 20 == 19) {
                String sum = Http.admin("/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0)
                        .getJsonObject("checksums").getString(NORM);
                assertEquals(reference.model().parameters().checksums().get(NORM), sum, "push " + i + ": checksum of the pushed tensor");
                checked++;
            }
        }
        double pushSeconds = (System.nanoTime() - t0) / 1e9;
        long afterPushes = outsideHeap();
        stop.set(true);
        for (Thread t : streams) t.join(120_000);
        boolean hung = streams.stream().anyMatch(Thread::isAlive);

        long t1 = System.nanoTime();
        for (int c = 0; c < CYCLES; c++) {
            if (c == CYCLES / 4) warmCycles = outsideHeap();
            Http.Reply rel = Http.admin("/release_memory_occupation", "{\"tags\": null}");
            assertEquals(200, rel.status(), "cycle " + c + ": " + rel.body());
            assertTrue(Http.admin("/resume_memory_occupation", "{\"tags\": null}").object().getBoolean("weights_must_be_pushed"));
            Http.Reply push = Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + originalDir + "\", \"weight_version\": \"cycle-" + c + "\"}");
            assertEquals(200, push.status(), "cycle " + c + ": " + push.body());
            Http.Reply gen = Http.post("/generate", Checkpoints.greedyBody(2));
            assertEquals(200, gen.status(), "cycle " + c + ": " + gen.body());
            assertEquals("cycle-" + c, gen.object().getJsonObject("meta_info").getString("weight_version"));
        }
        double cycleSeconds = (System.nanoTime() - t1) / 1e9;
        long rss1 = rssBytes(), heap1 = heap("memory_usedHeap_bytes"), end = outsideHeap();

        System.out.printf("soak: %d pushes in %.1f s (%.0f ms each) under %d streams; %d streams completed, %d aborted by "
                        + "abort_all pushes, %d failed, hung=%s; %d checksum checks; %d release/resume cycles in %.1f s; "
                        + "server RSS %d -> %d MiB, used heap %d -> %d MiB; resident outside the committed heap (MiB): "
                        + "warm %d, after pushes %d, warm cycles %d, end %d%n",
                PUSHES, pushSeconds, 1000 * pushSeconds / PUSHES, STREAMS, completed.get(), aborted.get(), failures.size(), hung,
                checked, CYCLES, cycleSeconds, rss0 >> 20, rss1 >> 20, heap0 >> 20, heap1 >> 20,
                warmPushes >> 20, afterPushes >> 20, warmCycles >> 20, end >> 20);
        assertTrue(failures.isEmpty(), "unexplained failures: " + failures);
        assertTrue(!hung, "a stream hung");
        assertTrue(completed.get() > STREAMS, "the streams kept generating");
        // Every push and reload frees its native memory at once, not at some later collection: once
        // warm, resident memory must not grow with the number of pushes or cycles. (The heap is
        // capped at 1 GiB for the tests, so heap garbage is bounded too.)
        assertTrue(afterPushes - warmPushes < 128L << 20,
                "native memory grew by " + ((afterPushes - warmPushes) >> 20) + " MiB over the second half of the pushes");
        if (CYCLES >= 4)
            assertTrue(end - warmCycles < 128L << 20, "native memory grew by " + ((end - warmCycles) >> 20) + " MiB over the last 3/4 of the cycles");
    }

    static SequenceOutput referenceLogprob(LlmEngine engine) {
        AtomicReference<SequenceOutput> out = new AtomicReference<>();
        engine.add(new Sequence("ref", 0, new int[] {9707, 11, 1879}, SamplingParams.builder().temperature(0).maxNewTokens(1).build(),
                new LogprobOptions(true, -1, 0, null), null, o -> { if (o.finished()) out.set(o); }, false, 0));
        while (engine.hasWork()) engine.step();
        return out.get();
    }

    /** Generates over and over until stopped; aborts are fine only when an abort_all push caused them. */
    static void stream(AtomicBoolean stop, AtomicInteger completed, AtomicInteger aborted, ConcurrentLinkedQueue<String> failures) {
        while (!stop.get()) {
            ThreadLocalRandom r = ThreadLocalRandom.current();
            String body = "{\"input_ids\": [" + r.nextInt(1000, 100000) + ", " + r.nextInt(1000, 100000) + "], \"stream\": true, "
                    + "\"sampling_params\": {\"max_new_tokens\": " + r.nextInt(4, 16) + ", \"temperature\": 1.0}}";
            try {
                HttpResponse<java.io.InputStream> resp = Http.CLIENT.send(HttpRequest.newBuilder(URI.create(Http.BASE + "/generate"))
                        .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofInputStream());
                if (resp.statusCode() != 200) {
                    failures.add("status " + resp.statusCode());
                    continue;
                }
                String last = null, done = null;
                try (BufferedReader in = new BufferedReader(new InputStreamReader(resp.body(), StandardCharsets.UTF_8))) {
                    for (String line; (line = in.readLine()) != null; ) {
                        if (!line.startsWith("data: ")) continue;
                        if (line.equals("data: [DONE]")) done = line;
                        else last = line.substring(6);
                    }
                }
                if (done == null || last == null) {
                    failures.add("stream ended without [DONE]");
                    continue;
                }
                JsonObject fr = Sse.json(last).getJsonObject("meta_info").getJsonObject("finish_reason");
                if (fr.getString("type").equals("abort")) {
                    if (fr.getString("message").contains("weight update")) aborted.incrementAndGet();
                    else failures.add("unexplained abort: " + fr);
                } else {
                    completed.incrementAndGet();
                }
            } catch (Exception e) {
                failures.add(e.toString());
            }
        }
    }

    /** The server's resident memory (the IT runs on the same machine), from its pid file. */
    static long rssBytes() throws Exception {
        Path pidFile = Path.of(System.getProperty("it.server.dir", "target/liberty/wlp/usr/servers/itServer")).getParent()
                .resolve(".pid/itServer.pid");
        if (!Files.exists(pidFile)) return 0;
        String pid = Files.readString(pidFile).trim();
        for (String line : Files.readAllLines(Path.of("/proc", pid, "status")))
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
        return 0;
    }

    /** Resident memory that is not Java heap: libtorch's tensors, JavaCPP, thread stacks, code. */
    static long outsideHeap() throws Exception {
        return rssBytes() - heap("memory_committedHeap_bytes");
    }

    static long heap(String metric) {
        for (String line : Http.get("/metrics?scope=base").body().split("\n"))
            if (line.startsWith(metric)) return (long) Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        return 0;
    }
}
