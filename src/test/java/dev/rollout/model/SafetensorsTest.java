package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.rollout.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
    @TempDir
    Path dir;

    @Test
    void writesWhatItReadsAndConvertsDtypes() throws IOException {
        ByteBuffer f32 = ByteBuffer.allocate(4 * 6).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 6; i++) f32.putFloat(i * 1.5f);
        ByteBuffer bf16 = ByteBuffer.allocate(2 * 3).order(ByteOrder.LITTLE_ENDIAN);
        for (float v : new float[] {1f, -2f, 0.5f}) bf16.putShort(RandomCheckpoint.bf16(v));
        Map<String, SafetensorsWriter.Tensor> t = new LinkedHashMap<>();
        t.put("a.weight", new SafetensorsWriter.Tensor("F32", new long[] {2, 3}, f32.flip()));
        t.put("b", new SafetensorsWriter.Tensor("BF16", new long[] {3}, bf16.flip()));
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));

        Map<String, Safetensors.Entry> h = Safetensors.readHeader(dir.resolve("model.safetensors"));
        assertEquals(2, h.size());
        assertArrayEquals(new long[] {2, 3}, h.get("a.weight").shape());
        assertEquals(0, (h.get("a.weight").begin()) % 8, "data starts 8-byte aligned");

        Checkpoint c = Checkpoint.open(dir);
        assertArrayEquals(new float[] {0f, 1.5f, 3f, 4.5f, 6f, 7.5f}, Torch.toFloats(c.load("a.weight", ScalarType.Float, new Device("cpu"))));
        assertArrayEquals(new float[] {1f, -2f, 0.5f}, Torch.toFloats(c.load("b", ScalarType.Float, new Device("cpu"))));
        assertThrows(IOException.class, () -> c.load("missing", ScalarType.Float, new Device("cpu")));
    }

    @Test
    void readsShardedCheckpointsThroughTheIndex() throws IOException {
        Checkpoint c = Checkpoint.open(Path.of("src/test/resources/fixtures/qwen3"));
        assertEquals(25, c.names().size(), "every tensor of the four shards");
    }

    @Test
    void refusesAFileThatIsNotSafetensors() throws IOException {
        Path bad = dir.resolve("model.safetensors");
        Files.write(bad, new byte[] {(byte) 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 1, 2});
        assertThrows(IOException.class, () -> Safetensors.readHeader(bad));
    }

    @Test
    void theDefaultModelIsDeterministic() throws IOException {
        RandomCheckpoint.Spec spec = new RandomCheckpoint.Spec(64, 16, 32, 1, 2, 1, 8, 128, java.util.List.of(1), 0.15);
        RandomCheckpoint.write(dir.resolve("x"), spec, 5);
        RandomCheckpoint.write(dir.resolve("y"), spec, 5);
        assertArrayEquals(Files.readAllBytes(dir.resolve("x/model.safetensors")), Files.readAllBytes(dir.resolve("y/model.safetensors")));
        ModelConfig cfg = ModelConfig.read(dir.resolve("x"));
        assertEquals("Qwen3ForCausalLM", cfg.architecture());
        assertEquals(8, cfg.headDim());
        CausalLm.load(dir.resolve("x"), ScalarType.Float, new Device("cpu"));
    }
}
