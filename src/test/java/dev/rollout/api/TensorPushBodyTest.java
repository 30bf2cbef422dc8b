package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** update_weights_from_tensor's JSON body read as a stream: payload to native memory, the rest to JSON-P. */
class TensorPushBodyTest {
    static TensorPushBody read(String json, long limit) {
        byte[] b = json.getBytes(StandardCharsets.UTF_8);
        return TensorPushBody.read(new ByteArrayInputStream(b), b.length, limit, 1 << 20);
    }

    static String message(Runnable r) {
        return assertThrows(ApiException.class, r::run).getMessage();
    }

    @Test
    void decodesRankZeroSkipsTheOthersAndKeepsEveryOtherField() {
        byte[] payload = new byte[300_001];
        new Random(1).nextBytes(payload);
        String json = "{\"weight_version\": \"v1\", \"serialized_named_tensors\": [\"" + Base64.getEncoder().encodeToString(payload)
                + "\", \"not even base64: rank 1 is never read\"], \"bucket_seq\": 3, \"meta\": [{\"a\": null, \"b\": 1.5e3}]}";
        try (TensorPushBody body = read(json, 1 << 24)) {
            ByteBuffer got = body.payload();
            byte[] bytes = new byte[got.remaining()];
            got.get(bytes);
            assertArrayEquals(payload, bytes);
            assertEquals("v1", body.fields().getString("weight_version"));
            assertEquals(3, body.fields().getJsonNumber("bucket_seq").intValueExact());
            assertEquals(1500.0, body.fields().getJsonArray("meta").getJsonObject(0).getJsonNumber("b").doubleValue());
            assertTrue(body.fields().getJsonArray("meta").getJsonObject(0).isNull("a"));
            assertTrue(!body.fields().containsKey("serialized_named_tensors"));
        }
    }

    @Test
    void unusableTensorsAreRefusedByNameWhenAskedFor() {
        try (TensorPushBody b = read("{\"load_format\": \"cuda_ipc\"}", 1000)) {
            assertEquals("cuda_ipc", b.fields().getString("load_format"));  // no payload needed for IPC descriptors
            assertTrue(message(b::payload).contains("serialized_named_tensors is required"));
        }
        try (TensorPushBody b = read("", 1000)) {
            assertTrue(message(b::payload).contains("serialized_named_tensors is required"), "an empty body is an empty object");
        }
        try (TensorPushBody b = read("{\"serialized_named_tensors\": []}", 1000)) {
            assertTrue(message(b::payload).contains("not an empty list"));
        }
        try (TensorPushBody b = read("{\"serialized_named_tensors\": \"QUJD\"}", 1000)) {
            assertTrue(message(b::payload).contains("not a string"));
        }
        try (TensorPushBody b = read("{\"serialized_named_tensors\": [7]}", 1000)) {
            assertTrue(message(b::payload).contains("[0] must be a base64 string, not a number"));
        }
    }

    @Test
    void badBodiesAreRefused() {
        assertTrue(message(() -> read("{\"serialized_named_tensors\": [\"not base64!\"]}", 1000)).contains("not base64"));
        assertTrue(message(() -> read("[1, 2]", 1000)).contains("must be a JSON object"));
        assertTrue(message(() -> read("{\"a\": tru", 1000)).contains("not valid JSON"));
        ApiException big = assertThrows(ApiException.class, () -> read("{\"serialized_named_tensors\": [\"" + "A".repeat(2000) + "\"]}", 1000));
        assertEquals(413, big.status());
        // a chunked body (no Content-Length) is refused as it passes the limit
        byte[] chunked = ("{\"serialized_named_tensors\": [\"" + "A".repeat(4000) + "\"]}").getBytes(StandardCharsets.UTF_8);
        assertEquals(413, assertThrows(ApiException.class, () -> TensorPushBody.read(new ByteArrayInputStream(chunked), -1, 1000, 1000)).status());
    }

    @Test
    void depthBombsAndLongNumbersAreA400LikeEveryOtherJsonBody() {
        for (int levels : new int[] {65, 999, 1001, 200_000}) {
            String bomb = "{\"weight_version\": " + "[".repeat(levels) + "]".repeat(levels) + "}";
            assertTrue(message(() -> read(bomb, 1 << 24)).contains("more than 64 levels deep"), "depth " + levels);
        }
        String nested64 = "{\"meta\": " + "[".repeat(63) + "]".repeat(63) + "}";
        read(nested64, 1 << 24).close();
        assertTrue(message(() -> read("{\"bucket_seq\": " + "1".repeat(1001) + "}", 1 << 24)).contains("number longer than 1000"));
    }

    @Test
    void aSecondPayloadIsRefusedRatherThanDecodedBesideTheFirst() {
        String twice = "{\"serialized_named_tensors\": [\"QUJD\"], \"serialized_named_tensors\": [\"REVG\"]}";
        assertTrue(message(() -> read(twice, 1000)).contains("appears twice"));
    }

    @Test
    void aContentLengthThatClaimsGigabytesIsOnlyAHint() {
        byte[] b = "{\"serialized_named_tensors\": [\"QUJD\"]}".getBytes(StandardCharsets.UTF_8);
        // 1.9 GB claimed, 40 bytes sent: read as what arrived, nothing sized from the claim
        try (TensorPushBody body = TensorPushBody.read(new ByteArrayInputStream(b), 1_999_999_999L, 2_147_483_000L, 1 << 20)) {
            assertEquals(3, body.payload().remaining());
        }
    }

    @Test
    void theOtherFieldsAreBoundedButThePayloadsAreNot() {
        // payloads of several ranks, far past the fields' budget of 1 MiB and past the 16 MiB string cap: streamed, not held
        byte[] payload = new byte[18 << 20];
        String base64 = Base64.getEncoder().encodeToString(payload);
        String json = "{\"serialized_named_tensors\": [\"" + base64 + "\", \"" + base64 + "\"], \"weight_version\": \"v\"}";
        try (TensorPushBody body = read(json, 1L << 30)) {
            assertEquals(payload.length, body.payload().remaining());
        }
        // the fields beside them are built on the heap: a large one is refused as it streams in, not after
        String bigVersion = "{\"weight_version\": \"" + "v".repeat(2 << 20) + "\", \"serialized_named_tensors\": [\"QUJD\"]}";
        assertEquals(413, assertThrows(ApiException.class, () -> read(bigVersion, 1L << 30)).status());
        StringBuilder manifest = new StringBuilder("{\"flattened_bucket_metadata\": [");
        for (int i = 0; i < 40_000; i++) manifest.append(i == 0 ? "" : ",").append("{\"name\": \"w").append(i).append("\", \"shape\": [1]}");
        String many = manifest.append("], \"serialized_named_tensors\": [\"QUJD\"]}").toString();
        ApiException e = assertThrows(ApiException.class, () -> read(many, 1L << 30));
        assertEquals(413, e.status());
        assertTrue(e.getMessage().contains("rollout.max-body-bytes"), e.getMessage());
    }
}
