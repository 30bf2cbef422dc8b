package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.client.ServerProcess;
import jakarta.json.JsonObject;
import java.net.URI;
import java.net.http.HttpRequest;
import org.junit.jupiter.api.Test;

/**
 * {@code rollout.weights-host-backup=true}, on a second server (the shared IT server keeps the
 * default, off; SGLang's CPU-backup case in ReleaseMemoryOccupationIT shares it): releasing the weights copies them to host memory, every GET route answers while
 * they are released (read-back included, from the host copy), and resume restores them bit for
 * bit: the same checksums and the same greedy output as before the release, without a push.
 */
class HostBackupIT {
    @Test
    void releaseResumeGenerateGivesTheSameOutputWithoutAPush() throws Exception {
        ServerProcess server = SharedServers.hostBackup();
        String base = "http://localhost:" + server.url().getPort();
        String greedyBefore = post(base, "/generate", Checkpoints.greedyBody(12)).object().getJsonArray("output_ids").toString();
        String sumBefore = checksum(base);

        Http.Reply released = admin(base, "/release_memory_occupation", "{\"tags\": [\"weights\", \"kv_cache\"]}");
        assertEquals(200, released.status(), released.body());
        assertTrue(released.object().getBoolean("weights_kept"), released.body());
        long backup = released.object().getJsonNumber("backup_bytes").longValue();
        assertTrue(backup > 50_000_000L, "the whole model (float32 on the CPU) went to host memory: " + released.body());
        JsonObject state = get(base, "/rl/state").object();
        assertEquals(backup, state.getJsonNumber("host_backup_bytes").longValue());
        assertFalse(get(base, "/status").object().getJsonObject("model").getBoolean("weights_resident"));

        GetRoutes.checkAll(base, "released", true, true);
        assertEquals(sumBefore, checksum(base), "while released, the checksums are the host copy's: what resume restores");

        Http.Reply resumed = admin(base, "/resume_memory_occupation", "{\"tags\": [\"weights\", \"kv_cache\"]}");
        assertEquals(200, resumed.status(), resumed.body());
        assertTrue(resumed.object().getBoolean("weights_restored"), resumed.body());
        assertFalse(resumed.object().getBoolean("weights_must_be_pushed"));
        assertEquals(backup, resumed.object().getJsonNumber("restored_bytes").longValue());
        assertEquals(200, get(base, "/health/ready").status(), "ready again without a push");
        assertEquals(sumBefore, checksum(base), "bit for bit");
        assertEquals(greedyBefore, post(base, "/generate", Checkpoints.greedyBody(12)).object().getJsonArray("output_ids").toString(),
                "the same greedy output as before the release");
    }

    static String checksum(String base) {
        return post(base, "/weights_checker", "{}").object().getJsonArray("ranks").getJsonObject(0).getString("per_gpu_checksum");
    }

    static Http.Reply get(String base, String path) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).GET());
    }

    static Http.Reply post(String base, String path, String body) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)));
    }

    static Http.Reply admin(String base, String path, String body) {
        return Http.send(HttpRequest.newBuilder(URI.create(base + path)).header("Content-Type", "application/json")
                .header("Authorization", "Bearer " + Http.ADMIN_KEY).POST(HttpRequest.BodyPublishers.ofString(body)));
    }
}
