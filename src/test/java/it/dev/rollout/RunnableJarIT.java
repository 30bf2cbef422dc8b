package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.RolloutClient;
import dev.rollout.client.ServerProcess;
import dev.rollout.safetensors.SafetensorsWriter;
import jakarta.json.JsonObject;
import java.net.URI;
import java.net.http.HttpRequest;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The README's quick start, as a newcomer runs it: {@code java -jar target/rollout-server.jar}
 * with keys from the environment, a generation, a chat completion, the status page, and a weight
 * push of a safetensors file, each as the README's curl line sends it; with {@code LOG_FORMAT=json}
 * the console log is JSON lines.
 */
class RunnableJarIT {
    static final String ADMIN = "readme-admin-key";

    @Test
    void theReadmesQuickStartWorks() throws Exception {
        int port = ServerProcessIT.freePort();
        ServerProcess.Spec spec = ServerProcess.Spec.runnableJar(Path.of("target/rollout-server.jar"), port)
                .withEnvironment("ROLLOUT_ADMIN_API_KEY", ADMIN).withEnvironment("LOG_FORMAT", "json")
                .withStartupTimeout(Duration.ofMinutes(3));
        try (RolloutClient client = RolloutClient.launch(spec, RolloutClient.Options.defaults())) {
            String base = "http://localhost:" + port;
            JsonObject g = post(base + "/generate",
                    "{\"text\": \"The capital of France is\", \"sampling_params\": {\"max_new_tokens\": 16, \"temperature\": 0}}").object();
            assertEquals(16, g.getJsonArray("output_ids").size());
            String model = send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).GET(), 200).object().getJsonArray("data")
                    .getJsonObject(0).getString("id");
            JsonObject chat = post(base + "/v1/chat/completions", "{\"model\": \"" + model
                    + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 8}").object();
            assertEquals("assistant", chat.getJsonArray("choices").getJsonObject(0).getJsonObject("message").getString("role"));
            assertTrue(send(HttpRequest.newBuilder(URI.create(base + "/")).GET(), 200).body().contains("Rollout Server"));

            // a push of one tensor, model.norm.weight (hidden size 128, float32 on the CPU), as a safetensors file
            ByteBuffer ones = ByteBuffer.allocate(128 * 4).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < 128; i++) ones.putFloat(1.5f);
            byte[] file = SafetensorsWriter.bytes(Map.of("model.norm.weight", new SafetensorsWriter.Tensor("F32", new long[] {128}, ones.flip())));
            HttpRequest.Builder push = HttpRequest.newBuilder(URI.create(base + "/update_weights_from_tensor?weight_version=step-1"))
                    .header("Content-Type", "application/octet-stream").POST(HttpRequest.BodyPublishers.ofByteArray(file));
            send(push.copy(), 403);   // control routes need the admin key
            JsonObject pushed = send(push.header("Authorization", "Bearer " + ADMIN), 200).object();
            assertEquals("step-1", pushed.getString("weight_version"));
            String norm = post(base + "/get_weights_by_name", "{\"name\": \"model.norm.weight\", \"truncate_size\": 2}").body();
            assertEquals("[1.5,1.5]", norm.replace(" ", ""));
            assertEquals("step-1", post(base + "/generate", "{\"text\": \"Hi\", \"sampling_params\": {\"max_new_tokens\": 2}}").object()
                    .getJsonObject("meta_info").getString("weight_version"));

            // LOG_FORMAT=json: the console is JSON lines, with the ready line and the push's line among them
            List<String> messages = new ArrayList<>();
            for (String line : Files.readAllLines(client.serverProcess().log()))
                if (line.startsWith("{\"type\":\"liberty_message\"")) messages.add(new Http.Reply(200, line).object().getString("message"));
            assertTrue(messages.stream().anyMatch(m -> m.startsWith("ready: Qwen3ForCausalLM, 20.2 M parameters, float32 on cpu")), messages.toString());
            assertTrue(messages.stream().anyMatch(m -> m.startsWith("weights step-1 applied: 1 tensors, 0.0 MB over ")), messages.toString());
            assertTrue(Files.isDirectory(spec.scratch().resolve("wlp")), "the jar unpacks into its scratch directory");
        }
        // each start unpacks some 360 MB: stopping the server deletes them
        assertFalse(Files.exists(spec.scratch()), "the extraction directory is left at " + spec.scratch());
    }

    private static Http.Reply post(String url, String body) {
        return send(HttpRequest.newBuilder(URI.create(url)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)), 200);
    }

    private static Http.Reply send(HttpRequest.Builder b, int status) {
        Http.Reply r = Http.send(b);
        assertEquals(status, r.status(), r.body());
        return r;
    }
}
