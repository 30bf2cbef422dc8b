package dev.rollout.weights;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.EngineConfig;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.LlmEngine;
import dev.rollout.engine.WeightUpdate;
import dev.rollout.model.CausalLm;
import dev.rollout.model.RandomCheckpoint;
import dev.rollout.model.Torch;
import dev.rollout.safetensors.SafetensorsWriter;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The weight path over a real engine loop: sessions, idempotency, expiry without a further request. */
class UpdateSessionsTest {
    static final RandomCheckpoint.Spec SPEC = new RandomCheckpoint.Spec(512, 64, 128, 2, 4, 2, 16, 256, List.of(1), 0.15);
    @TempDir
    static Path dir;
    static EngineLoop loop;

    @BeforeAll
    static void start() throws Exception {
        RandomCheckpoint.write(dir, SPEC, 1);
        CausalLm lm = CausalLm.load(dir, ScalarType.Float, new Device("cpu"));
        loop = new EngineLoop(new LlmEngine(lm, new EngineConfig("cpu", "float32", 4, 64, 8, 16, 0, 0.8), null, null), false,
                Executors.defaultThreadFactory());
    }

    @AfterAll
    static void stop() {
        loop.close();
    }

    static WeightUpdates weights(Duration sessionTimeout) {
        return new WeightUpdates(loop, new WeightUpdates.Settings(Duration.ofSeconds(10), sessionTimeout, false, "cpu", Duration.ofSeconds(10)));
    }

    /** The final norm as a safetensors file, all values {@code value}. */
    static TensorPayload norm(float value) throws Exception {
        ByteBuffer data = ByteBuffer.allocate(64 * 4).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < 64; i++) data.putFloat(value);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        SafetensorsWriter.write(out, Map.of("model.norm.weight", new SafetensorsWriter.Tensor("F32", new long[] {64}, data.flip())), Map.of());
        byte[] bytes = out.toByteArray();
        return new TensorPayload.Encoded(ByteBuffer.allocateDirect(bytes.length).put(bytes).flip(), null, null);
    }

    static WeightUpdates.PushOptions bucket(String updateId, Long seq) {
        return new WeightUpdates.PushOptions(null, false, updateId, seq);
    }

    @Test
    void anAbandonedSessionIsRolledBackAndItsTensorsFreedWithoutAnotherRequest() throws Exception {
        UpdateSessions sessions = new UpdateSessions();
        loop.addHousekeeping(sessions);
        sessions.begin("abandoned", Duration.ofMillis(200));
        Tensor staged = Torch.zeros(Torch.options(ScalarType.Float), 64);
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        tensors.put("model.norm.weight", staged);
        assertInstanceOf(UpdateSessions.Route.Done.class, sessions.route("abandoned", 0L, new WeightUpdate(tensors, null, false, "test", 256)));
        assertFalse(staged.isNull(), "staged, not freed");
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        // nothing but the loop's housekeeping touches the sessions from here: openSession() does not expire
        while (!staged.isNull() && System.nanoTime() < deadline) Thread.sleep(20);
        assertTrue(staged.isNull(), "the staged tensor was freed by the loop's tick");
        assertNull(sessions.openSession());
        assertEquals(SessionOutcome.Result.ROLLED_BACK, sessions.lastOutcome().result());
        assertTrue(sessions.lastOutcome().message().contains("timed out"));
    }

    @Test
    void aSessionAppliesItsBucketsAsOneUpdateAndDropsRetries() throws Exception {
        WeightUpdates weights = weights(Duration.ofMinutes(1));
        assertEquals(new WeightOutcome.Begun("s1"), weights.begin("s1", null));
        assertInstanceOf(WeightOutcome.Refused.class, weights.begin("s2", null), "one session at a time");
        assertEquals(new WeightOutcome.Staged("s1", 1, 0L, true), weights.push(norm(2f), bucket("s1", 0L)));
        assertEquals(new WeightOutcome.Staged("s1", 1, 0L, false), weights.push(norm(3f), bucket("s1", 0L)), "a retry is dropped");
        assertEquals(1, weights.openSession().buckets());
        String before = loop.status().weightVersion();
        WeightOutcome end = weights.end("s1", "v-s1", false);
        WeightOutcome.Applied applied = assertInstanceOf(WeightOutcome.Applied.class, end);
        assertEquals("v-s1", applied.update().version());
        assertFalse(before.equals(loop.status().weightVersion()));
        float[] values = loop.submit(new dev.rollout.engine.EngineCommand.ReadParameter("model.norm.weight", 1)).get().values();
        assertEquals(2f, values[0], "the first delivery of bucket 0, not its retry");
        WeightOutcome.Refused late = assertInstanceOf(WeightOutcome.Refused.class, weights.push(norm(4f), bucket("s1", 1L)));
        assertEquals(WeightOutcome.Reason.CONFLICT, late.reason(), "a late bucket of an ended session is not applied alone");
    }

    @Test
    void aRetriedBucketOutsideASessionIsAppliedOnce() throws Exception {
        WeightUpdates weights = weights(Duration.ofMinutes(1));
        assertInstanceOf(WeightOutcome.Applied.class, weights.push(norm(5f), bucket("direct", 7L)));
        WeightOutcome again = weights.push(norm(6f), bucket("direct", 7L));
        assertInstanceOf(WeightOutcome.AppliedBefore.class, again);
        assertEquals(5f, loop.submit(new dev.rollout.engine.EngineCommand.ReadParameter("model.norm.weight", 1)).get().values()[0]);
    }

    @Test
    void aWrongShapeIsRefusedBeforeTheEngine() throws Exception {
        WeightUpdates weights = weights(Duration.ofMinutes(1));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer data = ByteBuffer.allocate(16 * 4).order(ByteOrder.LITTLE_ENDIAN);
        SafetensorsWriter.write(out, Map.of("model.norm.weight", new SafetensorsWriter.Tensor("F32", new long[] {16}, data)), Map.of());
        byte[] bytes = out.toByteArray();
        WeightOutcome.Refused r = assertInstanceOf(WeightOutcome.Refused.class, weights.push(
                new TensorPayload.Encoded(ByteBuffer.allocateDirect(bytes.length).put(bytes).flip(), null, null), bucket(null, null)));
        assertEquals(WeightOutcome.Reason.BAD_REQUEST, r.reason());
        assertTrue(r.message().contains("model.norm.weight has shape [64], got [16]"), r.message());
    }

    @Test
    void aBucketOfASessionBeingAppliedIsRefusedNotAppliedAlone() {
        UpdateSessions sessions = new UpdateSessions();
        sessions.begin("ending", Duration.ofMinutes(1));
        Map<String, Tensor> first = new LinkedHashMap<>();
        first.put("model.norm.weight", Torch.zeros(Torch.options(ScalarType.Float), 64));
        sessions.route("ending", 0L, new WeightUpdate(first, null, false, "test", 256));
        UpdateSessions.Take.Ready ready = assertInstanceOf(UpdateSessions.Take.Ready.class, sessions.take("ending", "v", false));
        // end_weight_update is waiting for the engine now; a retry of bucket 0 arrives meanwhile
        Map<String, Tensor> retry = new LinkedHashMap<>();
        Tensor late = Torch.zeros(Torch.options(ScalarType.Float), 64);
        retry.put("model.norm.weight", late);
        UpdateSessions.Route route = sessions.route("ending", 0L, new WeightUpdate(retry, null, false, "test", 256));
        WeightOutcome.Refused refused = assertInstanceOf(WeightOutcome.Refused.class,
                assertInstanceOf(UpdateSessions.Route.Done.class, route).outcome());
        assertEquals(WeightOutcome.Reason.CONFLICT, refused.reason());
        assertTrue(refused.message().contains("being applied"), refused.message());
        assertTrue(late.isNull(), "the refused bucket's tensors are freed");
        ready.update().release();
    }
}
