package dev.rollout.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.rollout.engine.WeightUpdate;
import dev.rollout.model.Torch;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfEnvironmentVariable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * CUDA IPC end to end, on the GPU machine only: tools/reference/make_pickles.py creates CUDA
 * tensors with real torch, pickles them as SGLang and veRL do, keeps them alive and runs this test
 * (ROLLOUT_PICKLE_FIXTURE names its output). The server's path opens every handle, copies the
 * tensor out and closes the handle; the values must be the sender's.
 */
@EnabledIfEnvironmentVariable(named = "ROLLOUT_PICKLE_FIXTURE", matches = ".+")
class CudaIpcTest {
    static JsonObject fixture() throws IOException {
        return JsonParser.parseString(Files.readString(Path.of(System.getenv("ROLLOUT_PICKLE_FIXTURE")))).getAsJsonObject();
    }

    static void assertValues(JsonObject expected, WeightUpdate u) {
        assertEquals(expected.keySet(), u.tensors().keySet());
        for (Map.Entry<String, Tensor> e : u.tensors().entrySet()) {
            JsonObject want = expected.getAsJsonObject(e.getKey());
            JsonArray vals = want.getAsJsonArray("values");
            float[] w = new float[vals.size()];
            for (int i = 0; i < w.length; i++) w[i] = vals.get(i).getAsFloat();
            assertArrayEquals(w, Torch.toFloats(e.getValue()), e.getKey());
            assertEquals(want.getAsJsonArray("shape").size(), e.getValue().dim());
            assertEquals("cuda", e.getValue().device().str().getString().substring(0, 4));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"plain", "sglang", "verl", "flattened_bucket"})
    void picklesFromRealTorchOpenOnTheGpu(String kind) throws IOException {
        JsonObject f = fixture();
        byte[] raw = Base64.getDecoder().decode(f.getAsJsonObject("payloads").get(kind).getAsString());
        WeightUpdate u = WeightPayloads.fromPickle(raw, "cuda:0", "v", false);
        assertValues(f.getAsJsonObject("expected").getAsJsonObject(kind), u);
        u.release();
    }

    @Test
    void jsonDescriptorsOpenOnTheGpu() throws IOException {
        JsonObject f = fixture();
        List<WeightPayloads.IpcDescriptor> ds = new ArrayList<>();
        for (JsonElement e : f.getAsJsonArray("cuda_ipc_tensors")) {
            JsonObject d = e.getAsJsonObject();
            ds.add(new WeightPayloads.IpcDescriptor(d.get("name").getAsString(), d.get("dtype").getAsString(), longs(d.getAsJsonArray("shape")),
                    longs(d.getAsJsonArray("stride")), d.get("storage_offset").getAsLong(), Base64.getDecoder().decode(d.get("ipc_handle").getAsString()),
                    d.get("storage_offset_bytes").getAsLong(), d.get("device_uuid").getAsString(), 0,
                    d.get("event_handle").isJsonNull() ? null : Base64.getDecoder().decode(d.get("event_handle").getAsString()),
                    d.get("event_sync_required").getAsBoolean()));
        }
        WeightUpdate u = WeightPayloads.fromCudaIpc(ds, "cuda:0", "v", false);
        assertValues(f.getAsJsonObject("expected").getAsJsonObject("cuda_ipc"), u);
        u.release();
    }

    @Test
    void exploitsStayRefusedOnTheGpu() throws IOException {
        JsonObject f = fixture();
        for (String k : f.getAsJsonObject("exploits").keySet()) {
            byte[] evil = Base64.getDecoder().decode(f.getAsJsonObject("exploits").get(k).getAsString());
            assertThrows(IOException.class, () -> WeightPayloads.fromPickle(evil, "cuda:0", "v", false), k);
        }
    }

    static long[] longs(JsonArray a) {
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) out[i] = a.get(i).getAsLong();
        return out;
    }
}
