package dev.rollout.api;

import jakarta.json.JsonObject;
import jakarta.json.JsonReader;
import jakarta.json.JsonStructure;
import jakarta.json.JsonValue;
import jakarta.json.spi.JsonProvider;
import jakarta.json.stream.JsonParsingException;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

/**
 * Reads request bodies with a size cap and the {@link JsonLimits}, and turns JSON syntax errors
 * into messages that show where.
 */
final class JsonBodies {
    /**
     * The JSON-P provider, looked up once. Each {@code JSON.createX} call looks it up again, and
     * under Liberty the lookup goes through OSGi's class loaders: in a Flight Recording of the
     * server streaming 512 requests (R6, an H100) it took 27% of the HTTP threads' samples.
     */
    static final JsonProvider JSON = JsonProvider.provider();

    private JsonBodies() {}

    /** Bodies up to this size are read at once; larger ones take a {@link Body slot}. */
    static final int SMALL = 1 << 16;
    /**
     * Slots for large bodies, from the heap: a body of the default limit (16 MiB) may take about
     * 20 times its size as JSON-P values while it is parsed (a list of 8 million small numbers
     * is 8 million objects), so a slot stands for 24 times 16 MiB: 5 slots in a 2 GiB heap, 2 in
     * 1 GiB. Past the slots, a large body waits for one; small bodies (every generation of token
     * ids, every control call) never wait.
     */
    private static final Semaphore LARGE = new Semaphore((int) Math.max(2, Runtime.getRuntime().maxMemory() / (24 * (16L << 20))), true);
    private static final long WAIT_S = 60;

    /** A body's bytes, holding a large-body slot (if it needed one) until closed. */
    static final class Body implements AutoCloseable {
        final byte[] bytes;
        private boolean slot;

        private Body(byte[] bytes, boolean slot) {
            this.bytes = bytes;
            this.slot = slot;
        }

        @Override
        public void close() {
            if (slot) LARGE.release();
            slot = false;
        }
    }

    /** Reads a body, refused past {@code limit}; close it once its bytes are parsed. */
    static Body read(InputStream in, long limit) {
        if (in == null) return new Body(new byte[0], false);
        boolean slot = false;
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            long total = 0;
            int n;
            while ((n = in.read(buf)) > 0) {
                total += n;
                if (total > limit)
                    throw new ApiException(413, "request body is larger than the limit of " + limit + " bytes (rollout.max-body-bytes)");
                if (total > SMALL && !slot) {
                    if (!LARGE.tryAcquire(WAIT_S, TimeUnit.SECONDS))
                        throw new ApiException(503, "the server is reading as many large request bodies as its heap allows; retry");
                    slot = true;
                }
                out.write(buf, 0, n);
            }
            Body body = new Body(out.toByteArray(), slot);
            slot = false;
            return body;
        } catch (IOException e) {
            throw ApiException.badRequest("could not read the request body: " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ApiException(503, "interrupted while waiting to read the request body");
        } finally {
            if (slot) LARGE.release();
        }
    }

    /** JSON whitespace only (a body of 16 MB is not copied into a String to find out). */
    private static boolean blank(byte[] body) {
        for (byte b : body) if (b != ' ' && b != '\n' && b != '\r' && b != '\t') return false;
        return true;
    }

    /** Parses an object body; an empty body is an empty object. */
    static JsonObject object(InputStream in, long limit) {
        try (Body b = read(in, limit)) {
            return parse(b.bytes);
        }
    }

    private static JsonObject parse(byte[] body) {
        if (blank(body)) return JsonValue.EMPTY_JSON_OBJECT;
        JsonLimits.check(body);
        try (JsonReader r = JSON.createReader(new ByteArrayInputStream(body))) {
            JsonStructure s = r.read();
            if (!(s instanceof JsonObject o)) throw ApiException.badRequest("request body must be a JSON object");
            return o;
        } catch (JsonParsingException e) {
            long at = e.getLocation() == null ? -1 : e.getLocation().getStreamOffset();
            String text = new String(body, StandardCharsets.UTF_8);
            String near = at < 0 ? "" : " near '" + text.substring((int) Math.max(0, Math.min(text.length(), at) - 40),
                    (int) Math.min(text.length(), Math.max(at, 0) + 5)) + "'";
            throw ApiException.badRequest("request body is not valid JSON" + near + ": " + e.getMessage());
        } catch (jakarta.json.JsonException e) {
            throw ApiException.badRequest("request body is not valid JSON: " + e.getMessage());
        } catch (ApiException e) {
            throw e;
        } catch (RuntimeException e) {  // Parsson's own limits throw bare RuntimeExceptions
            throw ApiException.badRequest("request body is not valid JSON: " + e.getMessage());
        }
    }
}
