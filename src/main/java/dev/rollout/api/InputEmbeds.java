package dev.rollout.api;

import dev.rollout.engine.PromptEmbeds;
import jakarta.json.JsonArray;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonValue;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * SGLang's prompts as embeddings: {@code input_embeds}, one prompt as a list of rows (each the
 * model's hidden size of numbers) or a batch as a list of such lists; or {@code input_embeds_bytes},
 * one prompt as base64 of float32 little-endian (numpy's {@code tobytes()} on x86) with
 * {@code input_embeds_shape} {@code [rows, hidden]}. Every refusal names the field and position.
 */
final class InputEmbeds {
    /** The prompts, and whether the caller sent a batch (answer with a list). */
    record Parsed(List<PromptEmbeds> prompts, boolean batch) {}

    private InputEmbeds() {}

    static boolean present(JsonObject o) {
        return Fields.present(o, "input_embeds") || Fields.present(o, "input_embeds_bytes");
    }

    static Parsed parse(JsonObject o, int hidden) {
        if (Fields.present(o, "input_embeds") && Fields.present(o, "input_embeds_bytes"))
            throw ApiException.badRequest("input_embeds and input_embeds_bytes are two forms of one prompt; send one of them");
        if (Fields.present(o, "input_embeds_bytes")) return new Parsed(List.of(fromBytes(o, hidden)), false);
        JsonValue v = o.get("input_embeds");
        if (!(v instanceof JsonArray a) || a.isEmpty() || !(a.get(0) instanceof JsonArray first))
            throw Fields.type("input_embeds", "a non-empty list of rows (lists of numbers), or a list of such lists", v);
        boolean batch = !first.isEmpty() && first.get(0) instanceof JsonArray;
        if (!batch) return new Parsed(List.of(rows(a, "input_embeds", hidden)), false);
        List<PromptEmbeds> prompts = new ArrayList<>(a.size());
        for (int i = 0; i < a.size(); i++) {
            String name = "input_embeds[" + i + "]";
            if (!(a.get(i) instanceof JsonArray p) || p.isEmpty()) throw Fields.type(name, "a non-empty list of rows", a.get(i));
            prompts.add(rows(p, name, hidden));
        }
        return new Parsed(prompts, true);
    }

    /** One prompt: rows of {@code hidden} finite float32 values. */
    private static PromptEmbeds rows(JsonArray prompt, String name, int hidden) {
        float[] values = new float[Math.multiplyExact(prompt.size(), hidden)];
        for (int r = 0; r < prompt.size(); r++) {
            String at = name + "[" + r + "]";
            if (!(prompt.get(r) instanceof JsonArray row)) throw Fields.type(at, "a list of " + hidden + " numbers", prompt.get(r));
            if (row.size() != hidden)
                throw ApiException.badRequest(at + " has " + row.size() + " values; the model's hidden size is " + hidden);
            for (int j = 0; j < hidden; j++) {
                if (!(row.get(j) instanceof JsonNumber n)) throw Fields.type(at + "[" + j + "]", "a number", row.get(j));
                values[r * hidden + j] = finite((float) n.doubleValue(), at + "[" + j + "]");
            }
        }
        return new PromptEmbeds(values, prompt.size(), hidden);
    }

    private static PromptEmbeds fromBytes(JsonObject o, int hidden) {
        String b64 = Fields.string(o.get("input_embeds_bytes"), "input_embeds_bytes");
        if (!Fields.present(o, "input_embeds_shape"))
            throw ApiException.badRequest("input_embeds_bytes needs input_embeds_shape: [rows, hidden]");
        int[] shape = Fields.intArray(o.get("input_embeds_shape"), "input_embeds_shape");
        if (shape.length != 2 || shape[0] < 1 || shape[1] != hidden)
            throw ApiException.badRequest("input_embeds_shape must be [rows, " + hidden + "] (rows >= 1; the model's hidden size), not "
                    + java.util.Arrays.toString(shape));
        byte[] bytes;
        try {
            bytes = Base64.getDecoder().decode(b64);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("input_embeds_bytes is not base64: " + e.getMessage());
        }
        long want = (long) shape[0] * hidden * Float.BYTES;
        if (bytes.length != want)
            throw ApiException.badRequest("input_embeds_bytes holds " + bytes.length + " bytes; shape " + shape[0] + " x " + hidden
                    + " of float32 is " + want);
        float[] values = new float[shape[0] * hidden];
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(values);
        for (int i = 0; i < values.length; i++)
            finite(values[i], "input_embeds_bytes[" + i / hidden + "][" + i % hidden + "]");
        return new PromptEmbeds(values, shape[0], hidden);
    }

    /** NaN or infinity would poison the request's KV and every logit after it. */
    private static float finite(float v, String name) {
        if (!Float.isFinite(v)) throw ApiException.badRequest(name + " is not a finite float32");
        return v;
    }
}
