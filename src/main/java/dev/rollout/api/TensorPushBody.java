package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import com.fasterxml.jackson.core.Base64Variants;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import dev.rollout.weights.NativeBytes;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonValue;
import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;

/**
 * The JSON body of {@code update_weights_from_tensor}, read as a stream: the base64 payload of
 * {@code serialized_named_tensors[0]} is decoded straight from the socket into native memory,
 * and the other entries (other TP ranks) are skipped without being held; every other field is
 * kept as JSON-P for the usual checks. A 1 GB push therefore never sits on the Java heap, where
 * body, string and decoded bytes would take about six times its size.
 */
final class TensorPushBody implements AutoCloseable {
    private static final String TENSORS = "serialized_named_tensors";
    /**
     * The longest string among the other fields (names, versions, IPC handles: all short). The
     * payload itself streams through readBinaryValue, which this limit does not touch.
     */
    static final int MAX_FIELD_STRING = 16 << 20;
    /** Nesting and numbers as every JSON body (JsonLimits). */
    private static final JsonFactory JACKSON = JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxStringLength(MAX_FIELD_STRING)
                    .maxNestingDepth(JsonLimits.MAX_DEPTH).maxNumberLength(JsonLimits.MAX_NUMBER_LENGTH).build()).build();

    private final JsonObject fields;
    private final NativeBytes payload;   // null when serialized_named_tensors[0] was not read
    private final String problem;       // why serialized_named_tensors is unusable, or null

    private TensorPushBody(JsonObject fields, NativeBytes payload, String problem) {
        this.fields = fields;
        this.payload = payload;
        this.problem = problem;
    }

    /** Every top-level field but serialized_named_tensors. */
    JsonObject fields() {
        return fields;
    }

    /** The decoded bytes of serialized_named_tensors[0]; valid until {@link #close()}. */
    ByteBuffer payload() {
        if (problem != null) throw ApiException.badRequest(problem);
        return payload.bytes();
    }

    /**
     * @param length Content-Length, or -1: a hint for the native buffer (base64 is 4/3 of the bytes), never allocated up front
     * @param limit  rollout.max-weight-body-bytes
     * @param fieldsLimit rollout.max-body-bytes: what every field but serialized_named_tensors may take
     *               together, since those are built on the heap
     */
    static TensorPushBody read(InputStream in, long length, long limit, long fieldsLimit) {
        if (length > limit) throw tooLarge(limit);
        NativeBytes sink = null;
        String problem = null;
        boolean seen = false;
        try (JsonParser p = JACKSON.createParser(new Limited(in, limit))) {
            JsonToken first = p.nextToken();
            if (first == null) return new TensorPushBody(JsonValue.EMPTY_JSON_OBJECT, null, TENSORS + " is required: "
                    + "a list with one base64 payload per TP rank");  // an empty body is an empty object
            if (first != JsonToken.START_OBJECT) throw ApiException.badRequest("request body must be a JSON object");
            JsonObjectBuilder rest = JSON.createObjectBuilder();
            FieldBudget budget = new FieldBudget(fieldsLimit);
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                if (!name.equals(TENSORS)) {
                    rest.add(name, value(p, t, budget));
                    budget.check(p);  // a long string is only measured once read (at most MAX_FIELD_STRING)
                    continue;
                }
                long tensorsStart = p.currentTokenLocation().getByteOffset();
                // a second copy would decode a second payload beside the first (and leak it)
                if (seen) throw ApiException.badRequest(TENSORS + " appears twice in the request body");
                seen = true;
                if (t != JsonToken.START_ARRAY) {
                    problem = TENSORS + " must be a non-empty list of base64 strings, not " + describe(t);
                    p.skipChildren();
                    continue;
                }
                int i = 0;
                for (t = p.nextToken(); t != JsonToken.END_ARRAY; t = p.nextToken(), i++) {
                    if (i == 0 && t == JsonToken.VALUE_STRING) {
                        // One engine rank: it takes entry 0, as SGLang's TP rank 0 does.
                        sink = new NativeBytes(length > 0 ? length / 4 * 3 + 3 : -1, limit);
                        try {
                            p.readBinaryValue(Base64Variants.MIME_NO_LINEFEEDS, sink);
                        } catch (JsonProcessingException e) {
                            throw ApiException.badRequest(TENSORS + "[0] is not base64: " + e.getOriginalMessage());
                        } catch (IllegalArgumentException e) {  // how Jackson reports a bad base64 unit
                            throw ApiException.badRequest(TENSORS + "[0] is not base64: " + e.getMessage());
                        }
                    } else if (i == 0) {
                        problem = TENSORS + "[0] must be a base64 string, not " + describe(t);
                        p.skipChildren();
                    } else {
                        p.skipChildren();  // other ranks' payloads: scanned past, never held
                    }
                }
                if (i == 0) problem = TENSORS + " must be a non-empty list of base64 strings, not an empty list";
                budget.exclude(p.currentLocation().getByteOffset() - tensorsStart);
            }
            if (!seen) problem = TENSORS + " is required: a list with one base64 payload per TP rank";
            TensorPushBody body = new TensorPushBody(rest.build(), sink, problem);
            sink = null;
            return body;
        } catch (Limited.TooLarge | NativeBytes.TooLarge e) {
            throw tooLarge(limit);
        } catch (StreamConstraintsException e) {
            long at = e.getLocation() == null ? -1 : e.getLocation().getByteOffset();
            if (e.getMessage().contains("String value length"))
                throw new ApiException(413, "a string in the request body is longer than " + MAX_FIELD_STRING + " bytes");
            throw e.getMessage().contains("nesting depth") ? JsonLimits.tooDeep(at) : JsonLimits.numberTooLong(at);
        } catch (JsonProcessingException e) {
            throw ApiException.badRequest("request body is not valid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw ApiException.badRequest("could not read the request body: " + e.getMessage());
        } finally {
            if (sink != null) sink.close();
        }
    }

    /**
     * The bytes the other fields have taken, checked at every token as they are built on the
     * heap: the body's bytes so far less those of serialized_named_tensors, which go to native memory.
     */
    private static final class FieldBudget {
        private final long limit;
        private long excluded;

        FieldBudget(long limit) {
            this.limit = limit;
        }

        void exclude(long bytes) {
            excluded += bytes;
        }

        void check(JsonParser p) {
            if (p.currentLocation().getByteOffset() - excluded > limit)
                throw new ApiException(413, "the fields beside " + TENSORS + " take more than " + limit + " bytes (rollout.max-body-bytes)");
        }
    }

    /** The JSON value at the parser's current token, as JSON-P. */
    private static JsonValue value(JsonParser p, JsonToken t, FieldBudget budget) throws IOException {
        budget.check(p);
        return switch (t) {
            case START_OBJECT -> {
                JsonObjectBuilder o = JSON.createObjectBuilder();
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    o.add(name, value(p, p.nextToken(), budget));
                }
                yield o.build();
            }
            case START_ARRAY -> {
                JsonArrayBuilder a = JSON.createArrayBuilder();
                for (JsonToken e = p.nextToken(); e != JsonToken.END_ARRAY; e = p.nextToken()) a.add(value(p, e, budget));
                yield a.build();
            }
            case VALUE_STRING -> JSON.createValue(p.getText());
            case VALUE_NUMBER_INT -> JSON.createValue(p.getBigIntegerValue());
            case VALUE_NUMBER_FLOAT -> JSON.createValue(p.getDecimalValue());
            case VALUE_TRUE -> JsonValue.TRUE;
            case VALUE_FALSE -> JsonValue.FALSE;
            case VALUE_NULL -> JsonValue.NULL;
            default -> throw ApiException.badRequest("request body is not valid JSON near " + t);
        };
    }

    private static String describe(JsonToken t) {
        return switch (t) {
            case START_OBJECT -> "an object";
            case START_ARRAY -> "a list";
            case VALUE_STRING -> "a string";
            case VALUE_NUMBER_INT, VALUE_NUMBER_FLOAT -> "a number";
            case VALUE_TRUE, VALUE_FALSE -> "a boolean";
            case VALUE_NULL -> "null";
            default -> t.toString();
        };
    }

    private static ApiException tooLarge(long limit) {
        return new ApiException(413, "request body is larger than the limit of " + limit + " bytes (rollout.max-weight-body-bytes)");
    }

    @Override
    public void close() {
        if (payload != null) payload.close();
    }

    /** The request body, refused past the route's limit as it streams in. */
    private static final class Limited extends FilterInputStream {
        static final class TooLarge extends IOException {}

        private final long limit;
        private long read;

        Limited(InputStream in, long limit) {
            super(in == null ? InputStream.nullInputStream() : in);
            this.limit = limit;
        }

        @Override
        public int read() throws IOException {
            int b = super.read();
            if (b >= 0 && ++read > limit) throw new TooLarge();
            return b;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            int n = super.read(b, off, len);
            if (n > 0 && (read += n) > limit) throw new TooLarge();
            return n;
        }
    }
}
