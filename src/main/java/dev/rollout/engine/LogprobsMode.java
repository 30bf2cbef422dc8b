package dev.rollout.engine;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * What a request's logprobs are a function of (issue #21, ADR 0028): vLLM's four
 * {@code logprobs_mode}s, and SGLang's convention, which is the server's default.
 *
 * <ul>
 *   <li>{@code SGLANG}: log-softmax of the penalised and biased logits divided by the temperature,
 *       before min-p, top-k and top-p;
 *   <li>{@code RAW_LOGPROBS}, {@code RAW_LOGITS}: the model's logits as they come, log-softmaxed or not;
 *   <li>{@code PROCESSED_LOGITS}, {@code PROCESSED_LOGPROBS}: the logits the sampler draws from
 *       (penalties, bias, bans, temperature, then what min-p, top-k and top-p drop set to −∞),
 *       as they are or log-softmaxed.
 * </ul>
 */
public enum LogprobsMode {
    SGLANG, RAW_LOGPROBS, RAW_LOGITS, PROCESSED_LOGITS, PROCESSED_LOGPROBS;

    /** The mode of a request that names none, unless {@code rollout.logprobs-mode} says otherwise. */
    public static final LogprobsMode DEFAULT = SGLANG;

    /** As the API and the setting spell it: {@code raw_logprobs}. */
    public String wireName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The mode a wire name spells, or null for none. */
    public static LogprobsMode parse(String name) {
        for (LogprobsMode m : values()) if (m.wireName().equals(name)) return m;
        return null;
    }

    /** The wire names, for refusals: {@code sglang, raw_logprobs, ...}. */
    public static String allowed() {
        return Arrays.stream(values()).map(LogprobsMode::wireName).collect(Collectors.joining(", "));
    }

    /** Whether the values come from the logits before penalties, bias, bans and temperature. */
    public boolean raw() {
        return this == RAW_LOGPROBS || this == RAW_LOGITS;
    }

    /** Whether the values come from the logits the sampler draws from, filtered tokens at −∞. */
    public boolean processed() {
        return this == PROCESSED_LOGITS || this == PROCESSED_LOGPROBS;
    }

    /** Whether the values are logits, not log-probabilities (so may be positive). */
    public boolean logits() {
        return this == RAW_LOGITS || this == PROCESSED_LOGITS;
    }
}
