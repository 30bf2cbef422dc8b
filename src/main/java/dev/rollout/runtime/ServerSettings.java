package dev.rollout.runtime;

import dev.rollout.engine.EngineConfig;
import dev.rollout.engine.LogprobsMode;
import dev.rollout.engine.RequestTimeouts;
import dev.rollout.ranks.RankSettings;

/**
 * Every knob of the server, read once from MicroProfile Config (so from
 * {@code microprofile-config.properties}, system properties or environment variables such as
 * {@code ROLLOUT_MODEL_PATH}).
 *
 * <p>{@code enableMemorySaver} is SGLang's {@code --enable-memory-saver} as the operator declares
 * it: reported in /server_info for clients that check the mode (slime's external-engine attach),
 * and nothing else; release_memory_occupation frees memory whichever it is. {@code deterministic}
 * is {@code rollout.deterministic}, or SGLang's name for it, {@code rollout.enable-deterministic-inference}.
 * {@code logprobsMode} is {@code rollout.logprobs-mode}: the mode of a request that names none.
 * {@code toolStrictLevel} is {@code rollout.tool-strict-level}: when {@code tool_choice: "auto"}
 * is enforced ({@link ToolStrictLevel}). {@code cudaGraphWarmupTokens} is
 * {@code rollout.cuda-graph-warmup-tokens}: the contexts, in tokens, whose decode graphs are
 * captured at start-up for every batch size (0: each on first use).
 */
public record ServerSettings(
        String modelPath,
        String loadFormat,
        long dummySeed,
        boolean nativeKernels,
        boolean cudaGraphs,
        int cudaGraphWarmupTokens,
        boolean fp32LmHead,
        boolean deterministic,
        LogprobsMode logprobsMode,
        String servedModelName,
        String cacheDir,
        EngineConfig engine,
        int torchThreads,
        long maxBodyBytes,
        int maxN,
        double requestTimeoutSeconds,
        double keepaliveSeconds,
        double livenessSeconds,
        long maxWeightBodyBytes,
        double weightUpdateWaitSeconds,
        double weightSessionTimeoutSeconds,
        double weightGroupTimeoutSeconds,
        String apiKey,
        String adminApiKey,
        boolean allowPickle,
        boolean weightsHostBackup,
        boolean incrementalStreamingOutput,
        RequestTimeouts timeouts,
        double pauseTimeoutSeconds,
        boolean enableMemorySaver,
        RankSettings ranks,
        ToolStrictLevel toolStrictLevel) {

    /**
     * When chat completions constrain {@code tool_choice: "auto"} to well-formed calls, vLLM's
     * {@code --tool-strict-level} and SGLang's {@code SGLANG_TOOL_STRICT_LEVEL} (0, 1, 2), as
     * their users know them. {@code AUTO}: only where a tool says {@code "strict": true}, and only
     * such tools' arguments are held to their {@code parameters} (the others' to any JSON object);
     * {@code FUNCTION}: every request with tools, arguments as under AUTO; {@code PARAMETER}: every
     * request, every tool's arguments held to its schema, as if each were strict.
     * {@code tool_choice} "required" or a named function always holds arguments to the schema.
     */
    public enum ToolStrictLevel {
        AUTO, FUNCTION, PARAMETER;

        /** The level by vLLM's name ({@code auto}, {@code function}, {@code parameter}) or SGLang's number; null for anything else. */
        public static ToolStrictLevel parse(String name) {
            return switch (name.strip().toLowerCase(java.util.Locale.ROOT)) {
                case "auto", "off", "0" -> AUTO;
                case "function", "1" -> FUNCTION;
                case "parameter", "2" -> PARAMETER;
                default -> null;
            };
        }
    }
}
