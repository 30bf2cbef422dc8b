package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.FinishReason;
import dev.rollout.engine.SequenceOutput;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.json.JsonObjectBuilder;
import jakarta.json.JsonString;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/** What OpenAI's completions and chat completions share: the model check, sampling fields, usage. */
final class OpenAi {
    /** OpenAI field -> /generate's sampling_params field, same value. */
    private static final List<String[]> SAMPLING = List.of(
            new String[] {"temperature", "temperature"}, new String[] {"top_p", "top_p"}, new String[] {"n", "n"},
            new String[] {"stop", "stop"}, new String[] {"seed", "seed"}, new String[] {"presence_penalty", "presence_penalty"},
            new String[] {"frequency_penalty", "frequency_penalty"}, new String[] {"top_k", "top_k"}, new String[] {"min_p", "min_p"},
            new String[] {"repetition_penalty", "repetition_penalty"}, new String[] {"ignore_eos", "ignore_eos"},
            new String[] {"stop_token_ids", "stop_token_ids"}, new String[] {"min_tokens", "min_new_tokens"},
            new String[] {"skip_special_tokens", "skip_special_tokens"},
            new String[] {"logit_bias", "logit_bias"}, new String[] {"stop_regex", "stop_regex"});

    private OpenAi() {}

    /** A 400 without {@code model}, a 404 for a model this server does not serve (as OpenAI answers). */
    static void checkModel(JsonObject o, String served) {
        if (!(o.get("model") instanceof JsonString m)) throw ApiException.badRequest("model is required: \"" + served + "\" (GET /v1/models)");
        if (!m.getString().equals(served))
            throw new ApiException(404, "The model `" + m.getString() + "` does not exist; this server serves \"" + served + "\"");
    }

    /** /generate's sampling_params for an OpenAI request, generating at most {@code maxNewTokens}. */
    static JsonObjectBuilder sampling(JsonObject o, long maxNewTokens) {
        JsonObjectBuilder sp = JSON.createObjectBuilder().add("max_new_tokens", maxNewTokens);
        for (String[] f : SAMPLING) if (Fields.present(o, f[0])) sp.add(f[1], o.get(f[0]));
        return sp;
    }

    /** The stream and SGLang extras every OpenAI route passes through to /generate. */
    static void passThrough(JsonObject o, JsonObjectBuilder g) {
        if (Fields.present(o, "stream")) g.add("stream", Fields.bool(o.get("stream"), "stream"));
        if (Fields.present(o, "rid")) g.add("rid", o.get("rid"));
    }

    /** Whether the request asked for the usage chunk at the end of a stream. */
    static boolean includeUsage(JsonObject o) {
        return o.get("stream_options") instanceof JsonObject so && so.getBoolean("include_usage", false);
    }

    static boolean flag(JsonObject o, String name) {
        return Fields.present(o, name) && Fields.bool(o.get(name), name);
    }

    static String finishReason(FinishReason r) {
        return switch (r.type()) {
            case STOP -> "stop";
            case LENGTH -> "length";
            case ABORT -> "abort";
        };
    }

    /** JSON has no -inf; OpenAI clients expect numbers. */
    static double finite(float logprob) {
        return logprob == Float.NEGATIVE_INFINITY || Float.isNaN(logprob) ? -9999.0 : logprob;
    }

    static JsonArrayBuilder ids(int[] ids, int from) {
        JsonArrayBuilder a = JSON.createArrayBuilder();
        for (int k = from; k < ids.length; k++) a.add(ids[k]);
        return a;
    }

    /** What closes an OpenAI stream: the usage chunk (no choices) when asked for, then [DONE]. */
    static String streamEnd(JsonObjectBuilder head, boolean includeUsage, PendingGeneration pending, SequenceOutput[] finals) {
        String usage = includeUsage
                ? "data: " + head.add("choices", JSON.createArrayBuilder()).add("usage", usage(pending, finals)).build() + "\n\n" : "";
        return usage + "data: [DONE]\n\n";
    }

    /** Usage over all choices; the n samples of a prompt share it, so each prompt counts once, as OpenAI counts. */
    static JsonObject usage(PendingGeneration pending, SequenceOutput[] finals) {
        int prompt = 0, completion = 0;
        Set<GenerateRequest.Item> counted = Collections.newSetFromMap(new IdentityHashMap<>());
        for (SequenceOutput f : finals) {
            if (f == null) continue;
            completion += f.completionTokens();
            if (counted.add(pending.item(f.index()))) prompt += f.promptTokens();
        }
        return JSON.createObjectBuilder().add("prompt_tokens", prompt).add("completion_tokens", completion)
                .add("total_tokens", prompt + completion).build();
    }
}
