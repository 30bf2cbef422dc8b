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

    static byte[] read(InputStream in, long limit) {
        if (in == null) return new byte[0];
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[1 << 16];
            long total = 0;
            int n;
            while ((n = in.read(buf)) > 0) {
                total += n;
                if (total > limit)
                    throw new ApiException(413, "request body is larger than the limit of " + limit + " bytes (rollout.max-body-bytes)");
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } catch (IOException e) {
            throw ApiException.badRequest("could not read the request body: " + e.getMessage());
        }
    }

    /** JSON whitespace only (a body of 16 MB is not copied into a String to find out). */
    private static boolean blank(byte[] body) {
        for (byte b : body) if (b != ' ' && b != '\n' && b != '\r' && b != '\t') return false;
        return true;
    }

    /** Parses an object body; an empty body is an empty object. */
    static JsonObject object(InputStream in, long limit) {
        byte[] body = read(in, limit);
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
