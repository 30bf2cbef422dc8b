package dev.rollout.engine;

import dev.rollout.constrain.TokenIndex;
import java.util.List;

/**
 * How one request samples and when it stops; SGLang's {@code sampling_params}, already validated.
 * {@code topK} is {@code Integer.MAX_VALUE} when disabled; a temperature under 1e-6 means greedy.
 * A streamed request gets an event every {@code streamInterval} tokens, and one when it finishes.
 * {@code logitBias} is added to the logits before sampling; {@code stopRegex} ends the output when
 * one of its patterns matches the decoded text. {@code constraint} is a regex or JSON schema compiled
 * over the model's vocabulary (issue #22, ADR 0029), or null: compiled on the HTTP thread, it
 * reaches the engine as a value (a {@link TokenIndex} is shared and thread-safe), and each sample
 * walks it with a cursor of its own.
 */
public record SamplingParams(
        double temperature,
        double topP,
        int topK,
        double minP,
        double repetitionPenalty,
        double frequencyPenalty,
        double presencePenalty,
        int maxNewTokens,
        int minNewTokens,
        List<String> stop,
        List<Integer> stopTokenIds,
        boolean ignoreEos,
        boolean skipSpecialTokens,
        boolean noStopTrim,
        int n,
        Long seed,
        int streamInterval,
        LogitBias logitBias,
        StopRegex stopRegex,
        TokenIndex constraint) {

    public static final SamplingParams GREEDY = builder().temperature(0).build();

    public SamplingParams {
        if (streamInterval < 1) throw new IllegalArgumentException("streamInterval must be >= 1, not " + streamInterval);
        stop = List.copyOf(stop);
        stopTokenIds = List.copyOf(stopTokenIds);
        if (logitBias == null) logitBias = LogitBias.NONE;
        if (stopRegex == null) stopRegex = StopRegex.NONE;
    }

    public boolean greedy() {
        return temperature < 1e-6 || topK == 1;
    }

    public boolean constrained() {
        return constraint != null;
    }

    public boolean hasPenalties() {
        return repetitionPenalty != 1.0 || frequencyPenalty != 0.0 || presencePenalty != 0.0;
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.temperature = temperature; b.topP = topP; b.topK = topK; b.minP = minP;
        b.repetitionPenalty = repetitionPenalty; b.frequencyPenalty = frequencyPenalty; b.presencePenalty = presencePenalty;
        b.maxNewTokens = maxNewTokens; b.minNewTokens = minNewTokens; b.stop = stop; b.stopTokenIds = stopTokenIds;
        b.ignoreEos = ignoreEos; b.skipSpecialTokens = skipSpecialTokens; b.noStopTrim = noStopTrim; b.n = n; b.seed = seed;
        b.streamInterval = streamInterval; b.logitBias = logitBias; b.stopRegex = stopRegex;
        b.constraint = constraint;
        return b;
    }

    /** Defaults are SGLang's. */
    public static final class Builder {
        private double temperature = 1.0, topP = 1.0, minP = 0.0;
        private int topK = Integer.MAX_VALUE;
        private double repetitionPenalty = 1.0, frequencyPenalty = 0.0, presencePenalty = 0.0;
        private int maxNewTokens = 128, minNewTokens = 0, n = 1, streamInterval = 1;
        private List<String> stop = List.of();
        private List<Integer> stopTokenIds = List.of();
        private boolean ignoreEos, noStopTrim, skipSpecialTokens = true;
        private Long seed;
        private LogitBias logitBias = LogitBias.NONE;
        private StopRegex stopRegex;
        private TokenIndex constraint;

        public Builder temperature(double v) { temperature = v; return this; }
        public Builder topP(double v) { topP = v; return this; }
        public Builder topK(int v) { topK = v; return this; }
        public Builder minP(double v) { minP = v; return this; }
        public Builder repetitionPenalty(double v) { repetitionPenalty = v; return this; }
        public Builder frequencyPenalty(double v) { frequencyPenalty = v; return this; }
        public Builder presencePenalty(double v) { presencePenalty = v; return this; }
        public Builder maxNewTokens(int v) { maxNewTokens = v; return this; }
        public Builder minNewTokens(int v) { minNewTokens = v; return this; }
        public Builder stop(List<String> v) { stop = v; return this; }
        public Builder stopTokenIds(List<Integer> v) { stopTokenIds = v; return this; }
        public Builder ignoreEos(boolean v) { ignoreEos = v; return this; }
        public Builder skipSpecialTokens(boolean v) { skipSpecialTokens = v; return this; }
        public Builder noStopTrim(boolean v) { noStopTrim = v; return this; }
        public Builder n(int v) { n = v; return this; }
        public Builder seed(Long v) { seed = v; return this; }
        public Builder streamInterval(int v) { streamInterval = v; return this; }
        public Builder logitBias(LogitBias v) { logitBias = v; return this; }
        public Builder stopRegex(StopRegex v) { stopRegex = v; return this; }
        public Builder constraint(TokenIndex v) { constraint = v; return this; }

        public SamplingParams build() {
            return new SamplingParams(temperature, topP, topK, minP, repetitionPenalty, frequencyPenalty, presencePenalty,
                    maxNewTokens, minNewTokens, stop, stopTokenIds, ignoreEos, skipSpecialTokens, noStopTrim, n, seed,
                    streamInterval, logitBias, stopRegex, constraint);
        }
    }
}
