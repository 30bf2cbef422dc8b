package dev.rollout.runtime;

import dev.rollout.engine.EngineConfig;
import dev.rollout.engine.LogprobsMode;
import dev.rollout.engine.RequestTimeouts;
import dev.rollout.ranks.RankSettings;
import org.eclipse.microprofile.config.Config;

/** Reads {@link ServerSettings} from MicroProfile Config; defaults live in microprofile-config.properties. */
final class SettingsReader {
    private SettingsReader() {}

    static ServerSettings read(Config c) {
        EngineConfig engine = new EngineConfig(
                c.getValue("rollout.device", String.class),
                c.getValue("rollout.dtype", String.class),
                c.getValue("rollout.kv.block-size", Integer.class),
                c.getValue("rollout.kv.blocks", Integer.class),
                c.getValue("rollout.max-running-requests", Integer.class),
                c.getValue("rollout.max-batched-tokens", Integer.class),
                c.getValue("rollout.max-model-len", Integer.class),
                c.getValue("rollout.kv.memory-fraction", Double.class),
                c.getValue("rollout.enable-return-routed-experts", Boolean.class));
        return new ServerSettings(
                c.getOptionalValue("rollout.model.path", String.class).orElse(""),
                c.getValue("rollout.load-format", String.class),
                c.getValue("rollout.dummy-seed", Long.class),
                c.getValue("rollout.native-kernels", Boolean.class),
                c.getValue("rollout.cuda-graphs", Boolean.class),
                c.getValue("rollout.cuda-graph-warmup-tokens", Integer.class),
                c.getValue("rollout.fp32-lm-head", Boolean.class),
                // SGLang's flag name serves too
                c.getValue("rollout.deterministic", Boolean.class)
                        || c.getOptionalValue("rollout.enable-deterministic-inference", Boolean.class).orElse(false),
                logprobsMode(c.getValue("rollout.logprobs-mode", String.class)),
                c.getOptionalValue("rollout.served-model-name", String.class).orElse(""),
                c.getOptionalValue("rollout.cache-dir", String.class).orElse(System.getProperty("java.io.tmpdir")),
                engine,
                c.getValue("rollout.torch-threads", Integer.class),
                c.getValue("rollout.max-body-bytes", Long.class),
                c.getValue("rollout.max-n", Integer.class),
                c.getValue("rollout.request-timeout-seconds", Double.class),
                c.getValue("rollout.keepalive-seconds", Double.class),
                c.getValue("rollout.liveness-seconds", Double.class),
                c.getValue("rollout.max-weight-body-bytes", Long.class),
                c.getValue("rollout.weight-update-wait-seconds", Double.class),
                c.getValue("rollout.weight-session-timeout-seconds", Double.class),
                c.getValue("rollout.weight-group-timeout-seconds", Double.class),
                c.getOptionalValue("rollout.api-key", String.class).orElse(""),
                c.getOptionalValue("rollout.admin-api-key", String.class).orElse(""),
                c.getValue("rollout.allow-pickle", Boolean.class),
                c.getValue("rollout.weights-host-backup", Boolean.class),
                c.getValue("rollout.incremental-streaming-output", Boolean.class),
                new RequestTimeouts(c.getValue("rollout.waiting-timeout-seconds", Double.class),
                        c.getValue("rollout.running-timeout-seconds", Double.class),
                        c.getValue("rollout.timed-out-request-status-code", Integer.class)),
                c.getValue("rollout.pause-timeout-seconds", Double.class),
                c.getValue("rollout.enable-memory-saver", Boolean.class),
                RankSettings.of(c.getValue("rollout.tp-size", Integer.class), c.getValue("rollout.nnodes", Integer.class),
                        c.getValue("rollout.node-rank", Integer.class),
                        c.getOptionalValue("rollout.dist-init-addr", String.class).orElse(""),
                        c.getValue("rollout.dist-timeout-seconds", Double.class),
                        c.getValue("rollout.dist-join-timeout-seconds", Double.class)),
                toolStrictLevel(c.getOptionalValue("rollout.tool-strict-level", String.class).orElse("auto")));
    }

    /** A misspelt level stops the server at start rather than leaving tool calls unenforced that the operator meant enforced. */
    private static ServerSettings.ToolStrictLevel toolStrictLevel(String name) {
        ServerSettings.ToolStrictLevel l = ServerSettings.ToolStrictLevel.parse(name);
        if (l == null) throw new IllegalArgumentException("rollout.tool-strict-level must be auto, function or parameter (or SGLang's 0, 1, 2), not '" + name + "'");
        return l;
    }

    /** A misspelt mode stops the server at start rather than serving numbers a trainer did not ask for. */
    private static LogprobsMode logprobsMode(String name) {
        LogprobsMode m = LogprobsMode.parse(name.strip());
        if (m == null) throw new IllegalArgumentException("rollout.logprobs-mode must be one of " + LogprobsMode.allowed() + ", not '" + name + "'");
        return m;
    }
}
