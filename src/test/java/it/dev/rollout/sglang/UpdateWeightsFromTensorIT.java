package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.TempDirs;
import dev.rollout.engine.LlmEngine;
import dev.rollout.model.ParameterTable;
import dev.rollout.model.Safetensors;
import dev.rollout.safetensors.SafetensorsWriter;
import it.dev.rollout.Checkpoints;
import it.dev.rollout.RestoresServedWeights;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.StringJoiner;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * SGLang's {@code test/registered/rl/test_update_weights_from_tensor.py} at commit
 * 05285b2cd05b431f7336b00c0b49d8d52a211eba, over HTTP. SGLang pushes every parameter of its model
 * with one perturbed ({@code model.layers.0.mlp.down_proj.weight}, its first 128 values plus
 * linspace(0.01, 0.02)) and expects the weights checksum of those tensors. The tensors travel as
 * safetensors (base64 in {@code serialized_named_tensors}, or one flattened bucket with a JSON
 * manifest): SGLang's own form is a pickle, which this server refuses unless started with
 * rollout.allow-pickle (docs/api.md). The expected checksum is the one of an in-process engine
 * loaded from the same tensors written as a checkpoint.
 */
@ExtendWith(RestoresServedWeights.class)
class UpdateWeightsFromTensorIT {
    static final String PERTURBED = "model.layers.0.mlp.down_proj.weight";
    static final int PERTURB_NUMEL = 128;

    static String origin, version;
    /** The served tensors, PERTURBED in float32, in file order: name -> (dtype, shape, bytes). */
    static Map<String, SafetensorsWriter.Tensor> perturbed;
    static String expectedChecksum;

    @BeforeAll
    static void perturbedParams() throws IOException {
        origin = RlHttp.modelPath();
        version = RlHttp.get("/get_weight_version").ok().object().getString("weight_version");
        Path originDir = Path.of(origin);
        perturbed = new LinkedHashMap<>();
        for (var e : Safetensors.readHeader(originDir.resolve("model.safetensors")).entrySet()) {
            Safetensors.Entry t = e.getValue();
            perturbed.put(e.getKey(), e.getKey().equals(PERTURBED) ? perturb(t) : new SafetensorsWriter.Tensor(t.dtype(), t.shape(),
                    Safetensors.map(t)));
        }
        Path dir = TempDirs.deletedAtExit("rollout-it-perturbed-");
        try (DirectoryStream<Path> files = Files.newDirectoryStream(originDir)) {
            for (Path f : files) if (!f.getFileName().toString().equals("model.safetensors")) Files.copy(f, dir.resolve(f.getFileName()));
        }
        Safetensors.write(dir.resolve("model.safetensors"), perturbed, Map.of());
        LlmEngine reference = Checkpoints.engine(dir);
        expectedChecksum = ParameterTable.combinedChecksum(reference.model().parameters().checksums());
    }

    /** The stored tensor as float32, its first 128 values plus linspace(0.01, 0.02, 128) (SGLang's perturbation). */
    static SafetensorsWriter.Tensor perturb(Safetensors.Entry t) throws IOException {
        ByteBuffer in = Safetensors.map(t).order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) ((t.end() - t.begin()) / (t.dtype().equals("F32") ? 4 : 2));
        ByteBuffer out = ByteBuffer.allocate(n * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            float v = switch (t.dtype()) {
                case "F32" -> in.getFloat(i * 4);
                case "BF16" -> Float.intBitsToFloat((in.getShort(i * 2) & 0xffff) << 16);
                default -> throw new AssertionError("dtype " + t.dtype());
            };
            if (i < PERTURB_NUMEL) v += (float) (0.01 + 0.01 * i / (PERTURB_NUMEL - 1));
            out.putFloat(v);
        }
        return new SafetensorsWriter.Tensor("F32", t.shape(), out.flip());
    }

    @AfterEach
    void leaveServing() {
        RlHttp.leaveServing(origin, version);
    }

    static String checksum() {
        return RlHttp.post("/weights_checker", "{\"action\": \"checksum\"}").ok().object().getJsonArray("ranks").getJsonObject(0)
                .getString("per_gpu_checksum");
    }

    static String safetensorsBase64(Map<String, SafetensorsWriter.Tensor> tensors) throws IOException {
        Path tmp = Files.createTempFile("perturbed", ".safetensors");
        Safetensors.write(tmp, tensors, Map.of());
        String b64 = Base64.getEncoder().encodeToString(Files.readAllBytes(tmp));
        Files.delete(tmp);
        return b64;
    }

    static JsonObject push(String body) {
        return RlHttp.post("/update_weights_from_tensor", body).ok().object();
    }

    /**
     * SGLang also checks that the engine gave back its GPU memory after shutdown: that is a CUDA
     * measurement of an engine in the test's own process, which has no counterpart against a
     * shared server; the host side of it is WeightSoakIT's.
     */
    @Test
    void updateWeightsFromTensor() throws IOException {
        String before = checksum();
        push("{\"serialized_named_tensors\": [\"" + safetensorsBase64(perturbed) + "\"]}");
        String after = checksum();
        assertEquals(expectedChecksum, after);
        assertNotEquals(before, after);
    }

    /** SGLang's "direct" skips its merging of q/k/v and gate/up; this server keeps Hugging Face's names, so it reads the same. */
    @Test
    void updateWeightsFromTensorLoadFormatDirect() throws IOException {
        String before = checksum();
        push("{\"serialized_named_tensors\": [\"" + safetensorsBase64(perturbed) + "\"], \"load_format\": \"direct\"}");
        String after = checksum();
        assertEquals(expectedChecksum, after);
        assertNotEquals(before, after);
    }

    /**
     * SGLang loads with a Python function named by load_format (its custom_weight_loader): code
     * from the request's point of view, which this server never runs. The port checks the
     * refusal names load_format and changes nothing (docs/api.md lists the difference).
     */
    @Test
    void updateWeightsFromTensorLoadFormatCustom() throws IOException {
        String before = checksum();
        RlHttp.Reply r = RlHttp.post("/update_weights_from_tensor", "{\"serialized_named_tensors\": [\"" + safetensorsBase64(perturbed)
                + "\"], \"load_format\": \"sglang.srt.model_executor.model_runner._model_load_weights_direct\"}");
        assertEquals(400, r.status(), r.body());
        assertTrue(r.body().contains("load_format"), r.body());
        assertEquals(before, checksum());
    }

    /** One flat byte buffer with a manifest of where each tensor lies (SGLang's FlattenedTensorBucket, without the pickle). */
    @Test
    void updateWeightsFromTensorLoadFormatFlattenedBucket() throws IOException {
        String before = checksum();
        ByteArrayOutputStream flat = new ByteArrayOutputStream();
        StringJoiner meta = new StringJoiner(", ", "[", "]");
        for (var e : perturbed.entrySet()) {
            ByteBuffer data = e.getValue().data().duplicate();
            byte[] bytes = new byte[data.remaining()];
            data.get(bytes);
            long start = flat.size();
            flat.write(bytes);
            StringJoiner shape = new StringJoiner(", ", "[", "]");
            for (long d : e.getValue().shape()) shape.add(Long.toString(d));
            meta.add("{\"name\": \"" + e.getKey() + "\", \"dtype\": \"" + (e.getValue().dtype().equals("F32") ? "torch.float32" : "torch.bfloat16")
                    + "\", \"shape\": " + shape + ", \"start_idx\": " + start + ", \"end_idx\": " + flat.size() + "}");
        }
        push("{\"serialized_named_tensors\": [\"" + Base64.getEncoder().encodeToString(flat.toByteArray())
                + "\"], \"load_format\": \"flattened_bucket\", \"flattened_bucket_metadata\": " + meta + "}");
        String after = checksum();
        assertEquals(expectedChecksum, after);
        assertNotEquals(before, after);
    }

    // ---- TestServerUpdateWeightsFromTensorNonBlocking ------------------------------------------

    /**
     * SGLang: 32 requests of 3,000 tokens, pause (in place, then retract), push 1.5 into the up
     * projections of layers 6 to 15, continue; nothing is aborted, and {@code
     * torch.tensor(get_weights_by_name(name))[0, :5]} is 1.5. The default model has layers 0 to 3
     * (all four are pushed), and a CPU runs 8 requests of 120 tokens in the time SGLang's GPU runs its.
     */
    @Test
    void serverUpdateWeightsNonBlocking() throws Exception {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < 4; i++) names.add("model.layers." + i + ".mlp.up_proj.weight");
        long[] shape = Safetensors.readHeader(Path.of(origin).resolve("model.safetensors")).get(names.get(0)).shape();
        ByteBuffer full = ByteBuffer.allocate((int) (shape[0] * shape[1] * 4)).order(ByteOrder.LITTLE_ENDIAN);
        while (full.hasRemaining()) full.putFloat(1.5f);
        full.flip();
        Map<String, SafetensorsWriter.Tensor> named = new LinkedHashMap<>();
        for (String n : names) named.put(n, new SafetensorsWriter.Tensor("F32", shape, full.duplicate()));
        String bucket = safetensorsBase64(named);

        for (String mode : List.of("in_place", "retract")) {
            List<CompletableFuture<JsonObject>> futures = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                int q = i;
                futures.add(CompletableFuture.supplyAsync(() -> RlHttp.post("/generate", "{\"text\": \"Question: " + q
                        + ",The capital of France is\", \"sampling_params\": {\"temperature\": 0, \"max_new_tokens\": 120, \"ignore_eos\": true}}")
                        .ok().object()));
            }
            RlHttp.awaitRunning(1);
            RlHttp.post("/pause_generation", "{\"mode\": \"" + mode + "\"}").ok();
            JsonObject ret = push("{\"serialized_named_tensors\": [\"" + bucket + "\"], \"flush_cache\": " + mode.equals("retract") + "}");
            assertTrue(ret.getBoolean("success"));
            RlHttp.post("/continue_generation", "{}").ok();
            for (CompletableFuture<JsonObject> f : futures)
                assertNotEquals("abort", RlHttp.finishType(f.get(300, TimeUnit.SECONDS)), mode);
            for (String name : names.subList(0, 3)) {
                JsonArray first = RlHttp.post("/get_weights_by_name", "{\"name\": \"" + name + "\"}").ok().array().getJsonArray(0);
                for (int i = 0; i < 5; i++) assertEquals(1.5, first.getJsonNumber(i).doubleValue(), 0.002, name);
            }
        }
    }
}
