package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.FinishReason;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.engine.TokenLogprob;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import java.util.List;

/** Builds SGLang's {@code /generate} answer: {@code {text, output_ids, meta_info{...}}}. */
final class GenerateResponses {
    private final HfTokenizer tokenizer;   // null: no text anywhere
    private final boolean textInLogprobs;

    GenerateResponses(HfTokenizer tokenizer, boolean textInLogprobs) {
        this.tokenizer = tokenizer;
        this.textInLogprobs = textInLogprobs;
    }

    JsonObject toJson(SequenceOutput out, GenerateRequest.Item item, int index, boolean withIndex) {
        return toJson(out, item, index, withIndex, Sent.NOTHING);
    }

    /**
     * What a stream has already sent of a sequence: its first {@code tokens} output tokens (ids
     * and logprobs), {@code chars} characters of text, and its input logprobs if {@code input}.
     */
    record Sent(int tokens, int chars, boolean input, int routed) {
        static final Sent NOTHING = new Sent(0, 0, false, 0);

        static Sent after(SequenceOutput out) {
            return new Sent(out.outputIds().length, out.text() == null ? 0 : out.text().length(), true,
                    out.routed() == null ? 0 : out.routed().length());
        }
    }

    /**
     * The answer for {@code out} without what {@code sent} says went out already (incremental
     * streaming); counts (completion_tokens) stay totals, as in SGLang.
     */
    JsonObject toJson(SequenceOutput out, GenerateRequest.Item item, int index, boolean withIndex, Sent sent) {
        JsonObjectBuilder o = JSON.createObjectBuilder();
        // text can be shorter than what went out when a stop string is cut from its end
        if (out.text() != null) o.add("text", out.text().substring(Math.min(sent.chars(), out.text().length())));
        JsonArrayBuilder ids = JSON.createArrayBuilder();
        int[] outIds = out.outputIds();
        for (int i = Math.min(sent.tokens(), outIds.length); i < outIds.length; i++) ids.add(outIds[i]);
        o.add("output_ids", ids);
        if (withIndex) o.add("index", index);

        JsonObjectBuilder m = JSON.createObjectBuilder()
                .add("id", out.rid());
        if (out.finishReason() == null) m.addNull("finish_reason");
        else m.add("finish_reason", finishReason(out.finishReason()));
        m.add("prompt_tokens", out.promptTokens())
                .add("completion_tokens", out.completionTokens())
                .add("cached_tokens", out.cachedTokens())
                .add("weight_version", out.weightVersion());
        if (out.finished()) {
            // SGLang carries the spans on the finishing chunk only; intermediate stream chunks
            // would repeat a growing list for nothing (test_weight_version_spans test_11)
            JsonArrayBuilder spans = spans(out);
            List<SequenceOutput.VersionSpan> list = spansOf(out);
            m.add("weight_versions", spans)
                    .add("weight_version_start", list.get(0).version())
                    .add("weight_version_end", list.get(list.size() - 1).version());
        }
        m.add("num_retractions", out.numRetractions())
                .add("e2e_latency", out.e2eLatency());
        if (item.routedExperts() && out.routed() != null) m.add("routed_experts", routedExperts(out.routed().copy(sent.routed())));
        // the RL view (issue #22): whether a constraint masked the distribution the tokens were drawn
        // from, so a trainer knows which logprobs are of the model's own distribution (docs/api.md)
        if (item.logprobs().returnLogprob() || item.params().constrained()) m.add("constrained", item.params().constrained());
        if (item.logprobs().returnLogprob()) {
            List<TokenLogprob> outLps = out.outputLogprobs();
            outLps = outLps.subList(Math.min(sent.tokens(), outLps.size()), outLps.size());
            m.add("output_token_logprobs", tokenLogprobs(outLps));
            if (item.logprobs().topLogprobsNum() > 0) m.add("output_top_logprobs", topLogprobs(outLps));
            if (item.logprobs().tokenIds() != null)
                m.add("output_token_ids_logprobs", idsLogprobs(outLps, item.logprobs().tokenIds()));
            if (item.logprobs().wantsInput() && !sent.input()) {
                m.add("input_token_logprobs", tokenLogprobs(out.inputLogprobs()));
                if (item.logprobs().topLogprobsNum() > 0) m.add("input_top_logprobs", topLogprobs(out.inputLogprobs()));
                if (item.logprobs().tokenIds() != null)
                    m.add("input_token_ids_logprobs", idsLogprobs(out.inputLogprobs(), item.logprobs().tokenIds()));
            }
        }
        return o.add("meta_info", m).build();
    }

    /**
     * SGLang's {@code meta_info.routed_experts}: the experts of the positions not sent yet, as
     * base64 of little-endian int32, (positions, layers, topK) in C order, so that
     * {@code np.frombuffer(b64decode(s), np.int32).reshape(-1, layers, topk)} reads it.
     */
    static String routedExperts(int[] values) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * values.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int v : values) b.putInt(v);
        return java.util.Base64.getEncoder().encodeToString(b.array());
    }

    /** SGLang's {@code weight_versions}: {@code [{version, start, end}, ...]} over the output tokens. */
    static JsonArrayBuilder spans(SequenceOutput out) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (SequenceOutput.VersionSpan s : spansOf(out))
            a.add(JSON.createObjectBuilder().add("version", s.version()).add("start", s.start()).add("end", s.end()));
        return a;
    }

    /**
     * The spans, never empty: a sequence that ended before its first token (aborted while it
     * waited) reports one empty span of the version it saw, {@code [{version, 0, 0}]}, as SGLang
     * does, so that clients can always read the first and last span.
     */
    static List<SequenceOutput.VersionSpan> spansOf(SequenceOutput out) {
        List<SequenceOutput.VersionSpan> spans = out.weightVersions();
        return spans == null || spans.isEmpty() ? List.of(new SequenceOutput.VersionSpan(out.weightVersion(), 0, 0)) : spans;
    }

    static JsonObject finishReason(FinishReason r) {
        JsonObjectBuilder b = JSON.createObjectBuilder();
        switch (r.type()) {
            case STOP -> {
                b.add("type", "stop");
                if (r.matched() instanceof Integer i) b.add("matched", i);
                else b.add("matched", String.valueOf(r.matched()));
            }
            case LENGTH -> b.add("type", "length").add("length", r.length());
            case ABORT -> {
                b.add("type", "abort").add("message", r.message() == null ? "" : r.message());
                if (r.statusCode() != 0) b.add("status_code", r.statusCode());  // a timeout: SGLang's FINISH_ABORT carries it
            }
        }
        return b.build();
    }

    /** [[logprob|null, token_id, text|null], ...] */
    private JsonArrayBuilder tokenLogprobs(List<TokenLogprob> lps) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (TokenLogprob t : lps) a.add(triple(t.logprob(), t.tokenId()));
        return a;
    }

    private JsonArrayBuilder topLogprobs(List<TokenLogprob> lps) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (TokenLogprob t : lps) {
            if (Float.isNaN(t.logprob()) && t.topIds().length == 0) {
                a.addNull();
                continue;
            }
            JsonArrayBuilder alts = JSON.createArrayBuilder();
            for (int k = 0; k < t.topIds().length; k++) alts.add(triple(t.topLogprobs()[k], t.topIds()[k]));
            a.add(alts);
        }
        return a;
    }

    private JsonArrayBuilder idsLogprobs(List<TokenLogprob> lps, int[] ids) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (TokenLogprob t : lps) {
            if (t.idsLogprobs() == null) {
                a.addNull();
                continue;
            }
            JsonArrayBuilder alts = JSON.createArrayBuilder();
            for (int k = 0; k < ids.length; k++) alts.add(triple(t.idsLogprobs()[k], ids[k]));
            a.add(alts);
        }
        return a;
    }

    private JsonArrayBuilder triple(float logprob, int id) {
        JsonArrayBuilder t = JSON.createArrayBuilder();
        if (Float.isNaN(logprob)) t.addNull();
        else if (logprob == Float.NEGATIVE_INFINITY) t.add(-1e30); // JSON has no -inf; SGLang clients see a huge negative
        else if (logprob == Float.POSITIVE_INFINITY) t.add(1e30);  // a logits mode's +inf logit (a +inf logit_bias)
        else t.add((double) logprob);
        t.add(id);
        if (textInLogprobs && tokenizer != null) t.add(tokenizer.decode(new int[] {id}, false));
        else t.addNull();
        return t;
    }
}
