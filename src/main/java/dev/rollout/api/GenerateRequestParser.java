package dev.rollout.api;

import dev.rollout.constrain.ConstraintException;
import dev.rollout.constrain.TokenIndex;
import dev.rollout.engine.LogitBias;
import dev.rollout.engine.LogprobOptions;
import dev.rollout.engine.LogprobsMode;
import dev.rollout.engine.PromptEmbeds;
import dev.rollout.engine.SamplingParams;
import dev.rollout.engine.StopRegex;
import dev.rollout.runtime.Constraints;
import dev.rollout.tokenizer.HfTokenizer;
import jakarta.json.JsonArray;
import jakarta.json.JsonObject;
import jakarta.json.JsonString;
import jakarta.json.JsonValue;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Turns a {@code /generate} body (SGLang's {@code GenerateReqInput}) into a validated
 * {@link GenerateRequest}. Every refusal names the field. Unknown top-level fields are ignored,
 * unknown {@code sampling_params} keys are refused, as in SGLang.
 */
final class GenerateRequestParser {
    /** sampling_params keys that are accepted and have no effect here. */
    private static final Set<String> IGNORED = Set.of("spaces_between_special_tokens", "custom_params");
    /** sampling_params keys that would change the output if honoured, so they are refused rather than ignored. */
    private static final Set<String> UNSUPPORTED = Set.of("custom_logit_processor");
    /** SGLang's constraint keys, of which a request may send one: json_schema, regex, structural_tag (xgrammar's format, our subset) and ebnf. */
    static final List<String> CONSTRAINTS = List.of("json_schema", "regex", "structural_tag", "ebnf");
    private static final Set<String> KNOWN = Set.of("max_new_tokens", "max_tokens", "min_new_tokens", "temperature", "top_p",
            "top_k", "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "stop", "stop_token_ids",
            "ignore_eos", "skip_special_tokens", "no_stop_trim", "n", "sampling_seed", "seed", "stream_interval",
            "logit_bias", "stop_regex", "json_schema", "regex", "structural_tag", "ebnf");
    private static final int MAX_TOP_LOGPROBS = 100;
    /**
     * Sequences one request may ask for (prompts times n): each becomes engine state before the
     * first step. A 16 MB body of one-token prompts with n = 64 asked for 256 million; a GRPO
     * batch of 1,024 prompts with n = 16 is 16,384.
     */
    static final int MAX_SEQUENCES = 65_536;

    /**
     * What validation needs to know about the served model.
     *
     * @param routedExperts whether return_routed_experts can be honoured (a mixture of experts, the setting on)
     */
    record Limits(int vocabSize, int maxModelLen, long kvCapacityTokens, int maxN, int hiddenSize, boolean routedExperts) {
        /** A dense model's limits: no routed experts. */
        Limits(int vocabSize, int maxModelLen, long kvCapacityTokens, int maxN, int hiddenSize) {
            this(vocabSize, maxModelLen, kvCapacityTokens, maxN, hiddenSize, false);
        }
    }

    private final Limits limits;
    private final HfTokenizer tokenizer;
    private final LogprobsMode defaultMode;
    private final Constraints constraints;
    /** What a refused constraint is called: the OpenAI field it came from, or null for sampling_params' own. */
    private String constraintField;

    /** A parser whose requests without {@code logprobs_mode} get SGLang's ({@link LogprobsMode#DEFAULT}). */
    GenerateRequestParser(Limits limits, HfTokenizer tokenizer) {
        this(limits, tokenizer, LogprobsMode.DEFAULT, null);
    }

    /**
     * @param defaultMode the mode of a request that names none: rollout.logprobs-mode
     * @param constraints the server's constraint compiler, or null where none is (a constraint is then a 400)
     */
    GenerateRequestParser(Limits limits, HfTokenizer tokenizer, LogprobsMode defaultMode, Constraints constraints) {
        this.limits = limits;
        this.tokenizer = tokenizer;
        this.defaultMode = defaultMode;
        this.constraints = constraints;
    }

    /**
     * Names a refused constraint by the field the client sent ({@code response_format.json_schema.schema}),
     * for a body translated from an OpenAI request; null keeps sampling_params' names.
     */
    GenerateRequestParser constraintField(String field) {
        this.constraintField = field;
        return this;
    }

    GenerateRequest parse(JsonObject o) {
        for (String k : List.of("image_data", "video_data", "audio_data"))
            if (Fields.present(o, k)) throw ApiException.badRequest(k + " is not supported: this server serves text-only models");
        refuseUnhonoured(o);
        boolean hasText = Fields.present(o, "text"), hasIds = Fields.present(o, "input_ids"), hasEmbeds = InputEmbeds.present(o);
        if ((hasText ? 1 : 0) + (hasIds ? 1 : 0) + (hasEmbeds ? 1 : 0) != 1)
            throw ApiException.badRequest("Either text, input_ids or input_embeds should be provided (exactly one of them).");

        List<int[]> prompts = new ArrayList<>();
        List<PromptEmbeds> embeds = null;
        boolean batch;
        if (hasEmbeds) {
            InputEmbeds.Parsed parsed = InputEmbeds.parse(o, limits.hiddenSize());
            batch = parsed.batch();
            if (batch) tooManyPrompts(parsed.prompts().size());
            embeds = parsed.prompts();
            for (PromptEmbeds e : embeds) prompts.add(new int[e.length()]);  // placeholder ids: only their count matters
        } else if (hasIds) {
            JsonValue v = o.get("input_ids");
            if (!(v instanceof JsonArray a)) throw Fields.type("input_ids", "a list of token ids or a list of such lists", v);
            if (a.isEmpty()) throw ApiException.badRequest("input_ids cannot be empty.");
            batch = a.get(0) instanceof JsonArray;
            if (batch) tooManyPrompts(a.size());
            if (batch) for (int i = 0; i < a.size(); i++) prompts.add(Fields.intArray(a.get(i), "input_ids[" + i + "]"));
            else prompts.add(Fields.intArray(a, "input_ids"));
        } else {
            JsonValue v = o.get("text");
            batch = v instanceof JsonArray;
            List<String> texts = Fields.stringOrList(v, "text");
            if (texts.isEmpty()) throw ApiException.badRequest("text cannot be an empty list.");
            tooManyPrompts(texts.size());
            if (tokenizer == null) throw ApiException.badRequest("text needs a tokenizer, and the model has none; send input_ids");
            for (int i = 0; i < texts.size(); i++)
                prompts.add(encode(tokenizer, texts.get(i), true, limits.maxModelLen(), batch ? "text[" + i + "]" : null));
        }
        int size = prompts.size();
        String field = hasEmbeds ? "input_embeds" : hasIds ? "input_ids" : "text";
        for (int i = 0; i < size; i++) checkPrompt(prompts.get(i), batch ? field + "[" + i + "]" : field);

        List<String> rids = rids(o, size, batch);
        // in a session, logprob_start_len counts the session's history too, which only the engine knows: it checks it there
        boolean inSession = SessionParams.present(o);
        if (inSession && hasEmbeds)  // a session prepends its history as tokens; embedding rows have none to join
            throw ApiException.badRequest("input_embeds cannot continue a session: send the turn as text or input_ids");
        // SGLang's top-level flag; refused where it cannot be honoured rather than answered without the ids
        boolean routed = Fields.present(o, "return_routed_experts") && Fields.bool(o.get("return_routed_experts"), "return_routed_experts");
        if (routed && !limits.routedExperts())
            throw ApiException.badRequest("return_routed_experts needs a mixture-of-experts model served with "
                    + "rollout.enable-return-routed-experts=true (SGLang's --enable-return-routed-experts)");
        List<GenerateRequest.Item> items = new ArrayList<>();
        long sequences = 0;
        for (int i = 0; i < size; i++) {
            String at = batch ? "[" + i + "]" : "";
            JsonObject sp = perItemObject(o, "sampling_params", i, size);
            SamplingParams params = samplingParams(sp, "sampling_params" + (o.get("sampling_params") instanceof JsonArray ? at : ""));
            LogprobOptions lp = logprobs(o, i, size, inSession ? Integer.MAX_VALUE : prompts.get(i).length, at);
            if (hasEmbeds && lp.wantsInput())
                throw ApiException.badRequest("logprob_start_len" + at + " must be -1 with input_embeds: a prompt given as embeddings "
                        + "has no tokens to score");
            // SGLang's rule (TokenizerManager._validate_one_request): an explicit max_new_tokens
            // must fit beside the prompt; without one, generation stops at the context's end
            int len = prompts.get(i).length, context = limits.maxModelLen();
            if ((Fields.present(sp, "max_new_tokens") || Fields.present(sp, "max_tokens")) && (long) params.maxNewTokens() + len > context)
                throw ApiException.badRequest((batch ? field + at + ": " : "")
                        + "Requested token count exceeds the model's maximum context length of " + context + " tokens. You requested "
                        + "a total of " + ((long) params.maxNewTokens() + len) + " tokens: " + len + " tokens from the input messages and "
                        + params.maxNewTokens() + " tokens for the completion. Please reduce the number of tokens in the input "
                        + "messages or the completion to fit within the limit.");
            items.add(new GenerateRequest.Item(rids.get(i), prompts.get(i), params, lp, embeds == null ? null : embeds.get(i), routed));
            sequences += params.n();
            if (sequences > MAX_SEQUENCES)
                throw ApiException.badRequest("the request asks for more than " + MAX_SEQUENCES + " sequences (prompts times n); "
                        + "send it in parts");
        }
        boolean stream = Fields.present(o, "stream") && Fields.bool(o.get("stream"), "stream");
        boolean textInLogprobs = Fields.present(o, "return_text_in_logprobs") && Fields.bool(o.get("return_text_in_logprobs"), "return_text_in_logprobs");
        if (textInLogprobs && tokenizer == null) throw ApiException.badRequest("return_text_in_logprobs needs a tokenizer, and the model has none");
        return new GenerateRequest(items, batch, stream, textInLogprobs);
    }

    /**
     * Top-level fields that would change the output and that this server does not honour: a 400
     * naming each when it carries a value; the defaults clients send (null, false, "", a list of
     * nulls) stay accepted. {@code custom_logit_processor} is a dill payload, i.e. code: it is
     * refused unread and never run.
     */
    private static void refuseUnhonoured(JsonObject o) {
        if (OpenAi.hasValue(o.get("custom_logit_processor")))
            throw ApiException.badRequest("custom_logit_processor is not supported: it is serialized code, which this server never runs");
        if (OpenAi.hasValue(o.get("lora_path")) || OpenAi.hasValue(o.get("lora_id")))
            throw ApiException.badRequest((OpenAi.hasValue(o.get("lora_path")) ? "lora_path" : "lora_id")
                    + " is not supported: LoRA is not enabled on this server");
        if (OpenAi.hasValue(o.get("return_hidden_states")))
            throw ApiException.badRequest("return_hidden_states is not supported by this server");
    }

    private void checkPrompt(int[] ids, String name) {
        if (ids.length == 0) throw ApiException.badRequest(name + " cannot be empty.");
        for (int j = 0; j < ids.length; j++)
            if (ids[j] < 0 || ids[j] >= limits.vocabSize())
                throw ApiException.badRequest(name + "[" + j + "] = " + ids[j] + " is outside the vocabulary [0, " + limits.vocabSize() + ")");
        if (ids.length >= limits.maxModelLen()) throw inputTooLong(name.contains("[") ? name : null, ids.length + "", limits.maxModelLen());
        if (ids.length + 1 > limits.kvCapacityTokens())
            throw ApiException.badRequest(name + " has " + ids.length + " tokens, more than the KV cache holds (" + limits.kvCapacityTokens() + ")");
    }

    private static void tooManyPrompts(int prompts) {
        if (prompts > MAX_SEQUENCES)
            throw ApiException.badRequest("the request has " + prompts + " prompts, more than " + MAX_SEQUENCES + "; send it in parts");
    }

    /**
     * SGLang's refusal of a prompt that leaves no room in the context (input >= context length),
     * with the field first in a batch.
     */
    static ApiException inputTooLong(String field, String tokens, int context) {
        return ApiException.badRequest((field == null ? "" : field + ": ") + "The input (" + tokens + " tokens) is longer than the "
                + "model's context length (" + context + " tokens).");
    }

    /**
     * Tokenizes text from a request, after refusing by its length alone a text that cannot fit
     * the context ({@link HfTokenizer#minTokens}): tokenizing a 12 MB text only to refuse it
     * afterwards took 16 s. Every route that tokenizes user text comes through here.
     */
    static int[] encode(HfTokenizer tokenizer, String text, boolean addSpecialTokens, int context, String field) {
        long atLeast = tokenizer.minTokens(text);
        if (atLeast >= context) throw inputTooLong(field, "at least " + atLeast, context);
        return tokenizer.encode(text, addSpecialTokens);
    }

    private static List<String> rids(JsonObject o, int size, boolean batch) {
        List<String> out = new ArrayList<>();
        if (!Fields.present(o, "rid")) {
            for (int i = 0; i < size; i++) out.add(UUID.randomUUID().toString().replace("-", ""));
        } else if (o.get("rid") instanceof JsonArray a) {
            if (a.size() != size) throw ApiException.badRequest("rid has " + a.size() + " entries for " + size + " prompts");
            for (int i = 0; i < size; i++) out.add(Fields.string(a.get(i), "rid[" + i + "]"));
            if (new HashSet<>(out).size() != out.size()) throw duplicateRids(out);
        } else {
            String rid = Fields.string(o.get("rid"), "rid");
            if (!batch) out.add(rid);
            else for (int i = 0; i < size; i++) out.add(rid + "_" + i);
        }
        return out;
    }

    /** SGLang's refusal of a batch that names one rid twice (GenerateReqInput._validate_rid_uniqueness), in its words. */
    private static ApiException duplicateRids(List<String> rids) {
        Set<String> seen = new HashSet<>();
        Set<String> twice = new java.util.LinkedHashSet<>();
        for (String r : rids) if (!seen.add(r)) twice.add(r);
        StringBuilder list = new StringBuilder("[");
        for (String r : twice) list.append(list.length() > 1 ? ", " : "").append('\'').append(r).append('\'');
        return ApiException.badRequest("Duplicate request IDs detected within the request: " + list + "]");
    }

    /** A field that is either one value for every prompt or a list with one value per prompt. */
    private static JsonValue perItem(JsonObject o, String key, int i, int size, boolean listIsValue) {
        if (!Fields.present(o, key)) return null;
        JsonValue v = o.get(key);
        if (v instanceof JsonArray a && !(listIsValue && (a.isEmpty() || !(a.get(0) instanceof JsonArray)))) {
            if (a.size() != size) throw ApiException.badRequest(key + " has " + a.size() + " entries for " + size + " prompts");
            JsonValue e = a.get(i);
            return e.getValueType() == JsonValue.ValueType.NULL ? null : e;
        }
        return v;
    }

    private static JsonObject perItemObject(JsonObject o, String key, int i, int size) {
        JsonValue v = perItem(o, key, i, size, false);
        if (v == null) return JsonValue.EMPTY_JSON_OBJECT;
        if (!(v instanceof JsonObject obj)) throw Fields.type(key, "an object (or a list of objects)", v);
        return obj;
    }

    private LogprobOptions logprobs(JsonObject o, int i, int size, int promptLen, String at) {
        JsonValue rl = perItem(o, "return_logprob", i, size, false);
        boolean ret = rl != null && Fields.bool(rl, "return_logprob" + at);
        JsonValue sl = perItem(o, "logprob_start_len", i, size, false);
        int start = sl == null ? -1 : Fields.int32(sl, "logprob_start_len" + at);
        if (start < -1) throw ApiException.badRequest("logprob_start_len" + at + " must be >= -1, got " + start);
        if (start >= promptLen)
            throw ApiException.badRequest("logprob_start_len" + at + " = " + start + " must be less than the prompt length " + promptLen);
        JsonValue tn = perItem(o, "top_logprobs_num", i, size, false);
        int top = tn == null ? 0 : Fields.int32(tn, "top_logprobs_num" + at);
        if (top < 0 || top > MAX_TOP_LOGPROBS)
            throw ApiException.badRequest("top_logprobs_num" + at + " must be between 0 and " + MAX_TOP_LOGPROBS + ", got " + top);
        JsonValue ti = perItem(o, "token_ids_logprob", i, size, true);
        int[] ids = ti == null ? null : Fields.intArray(ti, "token_ids_logprob" + at);
        if (ids != null)
            for (int id : ids)
                if (id < 0 || id >= limits.vocabSize())
                    throw ApiException.badRequest("token_ids_logprob" + at + " contains " + id + ", outside the vocabulary");
        JsonValue lm = perItem(o, "logprobs_mode", i, size, false);
        LogprobsMode mode = lm == null ? defaultMode : logprobsMode(lm, "logprobs_mode" + at);
        return new LogprobOptions(ret, ret ? start : -1, ret ? top : 0, ret ? ids : null, mode);
    }

    /** vLLM's {@code logprobs_mode} names, and SGLang's convention as {@code "sglang"}. */
    private static LogprobsMode logprobsMode(JsonValue v, String name) {
        LogprobsMode m = v instanceof JsonString s ? LogprobsMode.parse(s.getString()) : null;
        if (m == null) throw Fields.type(name, "one of " + LogprobsMode.allowed(), v);
        return m;
    }

    SamplingParams samplingParams(JsonObject sp, String name) {
        // custom_params reach only custom logit processors (refused), except the top-p sets that
        // slime's patched SGLang returns when asked here; a run that needs them must stop at once
        if (sp.get("custom_params") instanceof JsonObject custom && custom.containsKey("return_top_p_token_ids")
                && custom.get("return_top_p_token_ids") != JsonValue.FALSE && custom.get("return_top_p_token_ids") != JsonValue.NULL)
            throw ApiException.badRequest(name + ".custom_params.return_top_p_token_ids is not supported: this server does not "
                    + "return the top-p token sets (a patch of slime's SGLang); sample with top_p = 1");
        for (String k : sp.keySet()) {
            if (sp.get(k).getValueType() == JsonValue.ValueType.NULL || IGNORED.contains(k)) continue;
            if (UNSUPPORTED.contains(k)) throw ApiException.badRequest(name + "." + k + " is not supported by this server");
            if (!KNOWN.contains(k)) throw ApiException.badRequest(name + " has an unknown key '" + k + "'");
        }
        SamplingParams.Builder b = SamplingParams.builder();
        String f;
        if (Fields.present(sp, f = "temperature")) {
            double t = Fields.number(sp.get(f), name + "." + f);
            if (t < 0) throw ApiException.badRequest(name + ".temperature must be >= 0, got " + t);
            b.temperature(t);
        }
        if (Fields.present(sp, f = "top_p")) {
            double p = Fields.number(sp.get(f), name + "." + f);
            if (!(p > 0 && p <= 1)) throw ApiException.badRequest(name + ".top_p must be in (0, 1], got " + p);
            b.topP(p);
        }
        if (Fields.present(sp, f = "top_k")) {
            int k = Fields.int32(sp.get(f), name + "." + f);
            if (k == 0 || k < -1) throw ApiException.badRequest(name + ".top_k must be -1 (all) or >= 1, got " + k);
            b.topK(k == -1 ? Integer.MAX_VALUE : k);
        }
        if (Fields.present(sp, f = "min_p")) {
            double p = Fields.number(sp.get(f), name + "." + f);
            if (p < 0 || p > 1) throw ApiException.badRequest(name + ".min_p must be in [0, 1], got " + p);
            b.minP(p);
        }
        for (String pen : List.of("frequency_penalty", "presence_penalty")) {
            if (!Fields.present(sp, pen)) continue;
            double p = Fields.number(sp.get(pen), name + "." + pen);
            if (p < -2 || p > 2) throw ApiException.badRequest(name + "." + pen + " must be in [-2, 2], got " + p);
            if (pen.startsWith("frequency")) b.frequencyPenalty(p); else b.presencePenalty(p);
        }
        if (Fields.present(sp, f = "repetition_penalty")) {
            double p = Fields.number(sp.get(f), name + "." + f);
            if (!(p > 0 && p <= 2)) throw ApiException.badRequest(name + ".repetition_penalty must be in (0, 2], got " + p);
            b.repetitionPenalty(p);
        }
        if (Fields.present(sp, f = "stream_interval")) {
            int k = Fields.int32(sp.get(f), name + "." + f);
            if (k < 1) throw ApiException.badRequest(name + ".stream_interval must be >= 1, got " + k);
            b.streamInterval(k);
        }
        if (Fields.present(sp, "max_new_tokens") && Fields.present(sp, "max_tokens"))
            throw ApiException.badRequest(name + " has both max_new_tokens and max_tokens; send one");
        int maxNew = 128;
        for (String key : List.of("max_new_tokens", "max_tokens")) {
            if (!Fields.present(sp, key)) continue;
            maxNew = Fields.int32(sp.get(key), name + "." + key);
            if (maxNew < 0) throw ApiException.badRequest(name + "." + key + " must be >= 0, got " + maxNew);
        }
        b.maxNewTokens(maxNew);
        if (Fields.present(sp, f = "min_new_tokens")) {
            int min = Fields.int32(sp.get(f), name + "." + f);
            if (min < 0 || min > maxNew)
                throw ApiException.badRequest(name + ".min_new_tokens must be in [0, max_new_tokens=" + maxNew + "], got " + min);
            b.minNewTokens(min);
        }
        if (Fields.present(sp, f = "stop")) {
            List<String> stop = Fields.stringOrList(sp.get(f), name + "." + f);
            if (tokenizer == null && !stop.isEmpty()) throw ApiException.badRequest(name + ".stop needs a tokenizer; use stop_token_ids");
            for (String s : stop) if (s.isEmpty()) throw ApiException.badRequest(name + ".stop cannot contain an empty string");
            b.stop(stop);
        }
        if (Fields.present(sp, f = "stop_token_ids")) {
            int[] ids = Fields.intArray(sp.get(f), name + "." + f);
            List<Integer> list = new ArrayList<>();
            for (int id : ids) {
                if (id < 0 || id >= limits.vocabSize())
                    throw ApiException.badRequest(name + ".stop_token_ids contains " + id + ", outside the vocabulary");
                list.add(id);
            }
            b.stopTokenIds(list);
        }
        if (Fields.present(sp, f = "ignore_eos")) b.ignoreEos(Fields.bool(sp.get(f), name + "." + f));
        if (Fields.present(sp, f = "skip_special_tokens")) b.skipSpecialTokens(Fields.bool(sp.get(f), name + "." + f));
        if (Fields.present(sp, f = "no_stop_trim")) b.noStopTrim(Fields.bool(sp.get(f), name + "." + f));
        if (Fields.present(sp, f = "n")) {
            int n = Fields.int32(sp.get(f), name + "." + f);
            if (n < 1 || n > limits.maxN()) throw ApiException.badRequest(name + ".n must be in [1, " + limits.maxN() + "], got " + n);
            b.n(n);
        }
        for (String key : List.of("sampling_seed", "seed"))
            if (Fields.present(sp, key)) b.seed(Fields.integer(sp.get(key), name + "." + key));
        if (Fields.present(sp, f = "logit_bias")) b.logitBias(logitBias(sp.get(f), name + "." + f));
        if (Fields.present(sp, f = "stop_regex")) b.stopRegex(stopRegex(sp.get(f), name + "." + f));
        b.constraint(constraint(sp, name));
        return b.build();
    }

    /**
     * SGLang's {@code json_schema} or {@code structural_tag} (JSON text; an object is taken too), {@code regex} or {@code ebnf},
     * at most one, compiled here on the HTTP thread through the server's cache: a bad pattern or a
     * limit hit is a 400 naming the field and the problem, before anything reaches the engine.
     */
    private TokenIndex constraint(JsonObject sp, String name) {
        List<String> given = CONSTRAINTS.stream().filter(k -> Fields.present(sp, k)).toList();
        if (given.isEmpty()) return null;
        if (given.size() > 1)
            throw ApiException.badRequest(name + " has " + String.join(" and ", given) + ": a request takes one constraint at most");
        String key = given.get(0), field = constraintField != null ? constraintField : name + "." + key;
        JsonValue v = sp.get(key);
        String source = !key.equals("regex") && (v instanceof JsonObject || v == JsonValue.TRUE) ? v.toString()
                : Fields.string(v, field);
        if (constraints == null) throw ApiException.badRequest(field + ": constrained decoding is unavailable on this server");
        try {
            return switch (key) {
                case "regex" -> constraints.regex(source);
                case "ebnf" -> constraints.ebnf(source);
                case "structural_tag" -> constraints.structuralTag(source);
                default -> constraints.jsonSchema(source);
            };
        } catch (ConstraintException e) {
            throw ApiException.badRequest(field + " is refused: " + e.getMessage());
        }
    }

    /**
     * SGLang's {@code logit_bias}: token ids as string keys (JSON has no others), each a number to
     * add to that token's logit. Any finite bias is taken, as SGLang takes it (OpenAI documents
     * -100 to 100); a key that is not a token id of this model is refused by name.
     */
    private LogitBias logitBias(JsonValue v, String name) {
        if (!(v instanceof JsonObject o)) throw Fields.type(name, "an object from token id (a string) to a bias", v);
        Map<Integer, Double> bias = new HashMap<>();
        for (Map.Entry<String, JsonValue> e : o.entrySet()) {
            String key = e.getKey();
            int id;
            try {
                id = Integer.parseInt(key.strip());
            } catch (NumberFormatException notAnId) {
                throw ApiException.badRequest(name + " has the key '" + shorten(key) + "', which is not a token id");
            }
            if (id < 0 || id >= limits.vocabSize())
                throw ApiException.badRequest(name + " must have keys in [0, " + (limits.vocabSize() - 1) + "], got " + key.strip());
            double d = Fields.number(e.getValue(), name + "[\"" + id + "\"]");
            if (!Double.isFinite(d) || Math.abs(d) > Float.MAX_VALUE)
                throw ApiException.badRequest(name + "[\"" + id + "\"] must be a finite number, got " + d);
            if (bias.put(id, d) != null) throw ApiException.badRequest(name + " has the token id " + id + " twice");
        }
        return LogitBias.of(bias);
    }

    /** SGLang's {@code stop_regex}: a pattern or a list of them, each compiled here so a bad one is a 400 naming it. */
    private StopRegex stopRegex(JsonValue v, String name) {
        List<String> regexes = Fields.stringOrList(v, name);
        if (regexes.isEmpty()) return StopRegex.NONE;
        if (tokenizer == null) throw ApiException.badRequest(name + " needs a tokenizer (the output is matched as text)");
        for (String r : regexes) {
            if (r.isEmpty()) throw ApiException.badRequest(name + " cannot contain an empty pattern");
            try {
                Pattern.compile(r);
            } catch (PatternSyntaxException e) {
                throw ApiException.badRequest(name + " has an invalid regular expression '" + shorten(r) + "': "
                        + e.getDescription() + " near index " + e.getIndex());
            }
        }
        return StopRegex.compile(regexes);
    }

    private static String shorten(String s) {
        return s.length() <= 64 ? s : s.substring(0, 64) + "...";
    }
}
