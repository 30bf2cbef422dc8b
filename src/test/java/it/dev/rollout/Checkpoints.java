package it.dev.rollout;

import dev.rollout.TempDirs;
import dev.rollout.engine.EngineConfig;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.Sequence;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.model.CausalLm;
import dev.rollout.model.RandomCheckpoint;
import dev.rollout.model.Safetensors;
import dev.rollout.runtime.DefaultModel;
import dev.rollout.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * Other weights for the default model's architecture, and the reference answer for them: the
 * engine run in this JVM from the checkpoint on disk (itself held to transformers by
 * ReferenceParityTest).
 */
public final class Checkpoints {
    public static final int[] PROMPT = {9707, 11, 1879, 0, 576, 6722, 3283, 315};

    /** A checkpoint with the default model's shape and different random weights, deleted when the JVM exits. */
    public static Path other(long seed) throws IOException {
        Path dir = TempDirs.deletedAtExit("rollout-it-weights-");
        RandomCheckpoint.write(dir, DefaultModel.SPEC, seed);
        return dir;
    }

    public static String base64File(Path file) throws IOException {
        return Base64.getEncoder().encodeToString(Files.readAllBytes(file));
    }

    /** A safetensors blob holding some tensors of a checkpoint, their bytes as stored. */
    public static byte[] subset(Path dir, List<String> names) throws IOException {
        Map<String, String> same = new LinkedHashMap<>();
        names.forEach(n -> same.put(n, n));
        return renamed(dir, same);
    }

    /** Like {@link #subset}, each tensor stored under a new name. */
    public static byte[] renamed(Path dir, Map<String, String> fromTo) throws IOException {
        Map<String, Safetensors.Entry> header = Safetensors.readHeader(dir.resolve("model.safetensors"));
        Map<String, SafetensorsWriter.Tensor> blobs = new LinkedHashMap<>();
        for (var ft : fromTo.entrySet()) {
            Safetensors.Entry e = header.get(ft.getKey());
            blobs.put(ft.getValue(), new SafetensorsWriter.Tensor(e.dtype(), e.shape(), Safetensors.map(e)));
        }
        Path tmp = Files.createTempFile("bucket", ".safetensors");
        Safetensors.write(tmp, blobs, Map.of());
        byte[] bytes = Files.readAllBytes(tmp);
        Files.delete(tmp);
        return bytes;
    }

    /** The raw bytes of one stored tensor. */
    public static byte[] rawBytes(Path dir, String name) throws IOException {
        Safetensors.Entry e = Safetensors.readHeader(dir.resolve("model.safetensors")).get(name);
        ByteBuffer b = Safetensors.map(e);
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    public static long[] shape(Path dir, String name) throws IOException {
        return Safetensors.readHeader(dir.resolve("model.safetensors")).get(name).shape();
    }

    /** An in-process engine on {@code dir}, as the server would run it on CPU. */
    public static LlmEngine engine(Path dir) throws IOException {
        CausalLm lm = CausalLm.load(dir, ScalarType.Float, new Device("cpu"));
        return new LlmEngine(lm, new EngineConfig("cpu", "float32", 16, 256, 8, 2048, 0, 0.8), null, null);
    }

    /**
     * Copies tensors into an in-process reference engine's parameters, as the server's update
     * does, so that the reference generates what the server should after the same push.
     */
    public static void copyInto(LlmEngine engine, Map<String, Tensor> tensors) {
        tensors.forEach((name, t) -> engine.model().parameters().get(name).copy_(t));
        tensors.values().forEach(Tensor::close);
        engine.flushCache();  // KV computed under the old weights must not be reused
    }

    public static int[] greedy(LlmEngine engine, int n) {
        AtomicReference<SequenceOutput> out = new AtomicReference<>();
        engine.add(new Sequence("ref", 0, PROMPT, SamplingParams.builder().temperature(0).maxNewTokens(n).ignoreEos(true).build(),
                LogprobOptions.NONE, null, o -> { if (o.finished()) out.set(o); }, false, 0));
        while (engine.hasWork()) engine.step();
        return out.get().outputIds();
    }

    public static String greedyBody(int n) {
        StringBuilder ids = new StringBuilder();
        for (int id : PROMPT) ids.append(ids.length() == 0 ? "" : ",").append(id);
        return "{\"input_ids\": [" + ids + "], \"sampling_params\": {\"max_new_tokens\": " + n
                + ", \"temperature\": 0, \"ignore_eos\": true}}";
    }
}
