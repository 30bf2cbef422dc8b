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
 */
public record ServerSettings(
        String modelPath,
        String loadFormat,
        long dummySeed,
        boolean nativeKernels,
        boolean cudaGraphs,
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
        RankSettings ranks) {}
