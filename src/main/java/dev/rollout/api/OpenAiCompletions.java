package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.SequenceOutput;
import dev.rollout.engine.TokenLogprob;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.JsonArray;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonNumber;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.util.List;
import java.util.Set;
import java.util.UUID;

/**
 * OpenAI's {@code POST /v1/completions} over the engine: the request becomes the equivalent
 * {@code /generate} call (so it is validated and run the same way), and the engine's snapshots
 * become OpenAI's answer, whole or as {@code text_completion} chunks. SGLang's extras are
 * accepted beside OpenAI's fields: {@code top_k}, {@code min_p}, {@code repetition_penalty},
 * {@code ignore_eos}, {@code stop_token_ids}, {@code min_tokens}, {@code rid}, and
 * {@code return_token_ids} (each choice's {@code token_ids}, and {@code prompt_token_ids}).
 */
final class OpenAiCompletions {
    private static final Set<String> UNSUPPORTED = Set.of("suffix", "echo");
    private OpenAiCompletions() {}

    /** The /generate body for an OpenAI completions request; 400s name OpenAI's fields. */
    static JsonObject toGenerate(JsonObject o) {
        for (String k : UNSUPPORTED)
            if (Fields.present(o, k)) throw ApiException.badRequest(k + " is not supported by this server's completions");
        OpenAi.refuseUnhonoured(o);
        if (Fields.present(o, "best_of") && Fields.integer(o.get("best_of"), "best_of") != 1)
            throw ApiException.badRequest("best_of must be 1 (use n for several completions)");
        if (!Fields.present(o, "prompt")) throw ApiException.badRequest("prompt is required: a string, a list of strings, or token ids");
        JsonObjectBuilder g = JSON.createObjectBuilder();
        JsonValue prompt = o.get("prompt");
        if (prompt instanceof JsonString) {
            g.add("text", prompt);
        } else if (prompt instanceof JsonArray a && !a.isEmpty()) {
            JsonValue first = a.get(0);
            if (first instanceof JsonString) g.add("text", a);
            else if (first instanceof JsonNumber) g.add("input_ids", a);
            else if (first instanceof JsonArray) g.add("input_ids", a);
            else throw Fields.type("prompt", "a string, a list of strings, a list of token ids or a list of such lists", prompt);
        } else {
            throw Fields.type("prompt", "a string, a list of strings, a list of token ids or a list of such lists", prompt);
        }
        // OpenAI's default is 16 tokens
        g.add("sampling_params", OpenAi.sampling(o, Fields.present(o, "max_tokens") ? Fields.integer(o.get("max_tokens"), "max_tokens") : 16));
        if (Fields.present(o, "logprobs")) {
            long k = Fields.integer(o.get("logprobs"), "logprobs");
            if (k < 0 || k > 20) throw ApiException.badRequest("logprobs must be from 0 to 20, not " + k);
            g.add("return_logprob", true).add("top_logprobs_num", k);
        }
        OpenAi.passThrough(o, g);
        return g.build();
    }

    /** The answers: one choice per sequence (prompt-major, then sample), usage over all. */
    static final class Format implements GenerationRelay.Format {
        private final PendingGeneration pending;
        private final HfTokenizer tokenizer;
        private final String id, model;
        private final long created = System.currentTimeMillis() / 1000;
        private final boolean includeUsage, tokenIds;
        private final int[] sentTokens, sentChars;

        Format(PendingGeneration pending, HfTokenizer tokenizer, String model, boolean includeUsage, boolean tokenIds) {
            this.pending = pending;
            this.tokenizer = tokenizer;
            this.id = "cmpl-" + UUID.randomUUID().toString().replace("-", "");
            this.model = model;
            this.includeUsage = includeUsage;
            this.tokenIds = tokenIds;
            this.sentTokens = new int[pending.size()];
            this.sentChars = new int[pending.size()];
        }

        @Override
        public String event(SequenceOutput ev) {
            int i = ev.index();
            String text = ev.text() == null ? "" : ev.text();
            int from = Math.min(sentChars[i], text.length());
            JsonObjectBuilder c = choice(ev, text.substring(from), sentTokens[i]);
            sentChars[i] = text.length();
            sentTokens[i] = ev.outputIds().length;
            return "data: " + head().add("choices", JSON.createArrayBuilder().add(c)).build() + "\n\n";
        }

        @Override
        public String end(SequenceOutput[] finals) {
            return OpenAi.streamEnd(head(), includeUsage, pending, finals);
        }

        @Override
        public String whole(SequenceOutput[] finals) {
            JsonArrayBuilder choices = JSON.createArrayBuilder();
            for (SequenceOutput f : finals) {
                if (f == null) return Errors.body(504, "no answer from the engine").toString();
                choices.add(choice(f, f.text() == null ? "" : f.text(), 0));
            }
            return head().add("choices", choices).add("usage", OpenAi.usage(pending, finals)).add("metadata", OpenAi.metadata(finals[0]))
                    .build().toString();
        }

        private JsonObjectBuilder head() {
            return JSON.createObjectBuilder().add("id", id).add("object", "text_completion").add("created", created).add("model", model);
        }

        private JsonObjectBuilder choice(SequenceOutput out, String text, int fromToken) {
            JsonObjectBuilder c = JSON.createObjectBuilder().add("index", out.index()).add("text", text);
            GenerateRequest.Item item = pending.item(out.index());
            if (item.logprobs().returnLogprob()) c.add("logprobs", logprobs(out.outputLogprobs(), fromToken));
            else c.addNull("logprobs");
            if (out.finishReason() == null) c.addNull("finish_reason");
            else c.add("finish_reason", OpenAi.finishReason(out.finishReason()));
            OpenAi.matchedStop(c, out.finishReason());
            if (tokenIds) {
                c.add("token_ids", OpenAi.ids(out.outputIds(), fromToken));
                if (fromToken == 0) c.add("prompt_token_ids", OpenAi.ids(item.inputIds(), 0));
            }
            return c;
        }

        /** OpenAI's legacy shape: tokens, token_logprobs, top_logprobs (token text -> logprob), text_offset. */
        private JsonObject logprobs(List<TokenLogprob> lps, int from) {
            JsonArrayBuilder tokens = JSON.createArrayBuilder(), values = JSON.createArrayBuilder(), tops = JSON.createArrayBuilder(),
                    offsets = JSON.createArrayBuilder();
            int offset = 0;
            for (int k = 0; k < lps.size(); k++) {
                TokenLogprob t = lps.get(k);
                String piece = piece(t.tokenId());
                if (k >= from) {
                    tokens.add(piece);
                    values.add(OpenAi.finite(t.logprob()));
                    JsonObjectBuilder top = JSON.createObjectBuilder();
                    for (int j = 0; j < t.topIds().length; j++) top.add(piece(t.topIds()[j]), OpenAi.finite(t.topLogprobs()[j]));
                    tops.add(top);
                    offsets.add(offset);
                }
                offset += piece.length();
            }
            return JSON.createObjectBuilder().add("tokens", tokens).add("token_logprobs", values).add("top_logprobs", tops)
                    .add("text_offset", offsets).build();
        }

        private String piece(int id) {
            return tokenizer == null ? "token_id:" + id : tokenizer.decode(new int[] {id}, false);
        }
    }
}
