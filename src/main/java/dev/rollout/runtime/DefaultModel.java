package dev.rollout.runtime;

import dev.rollout.model.RandomCheckpoint;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.logging.Logger;

/**
 * The embedded default model: a small Qwen3 with random weights from a fixed seed and the real
 * Qwen3 tokenizer, written once into a cache directory and then loaded like any checkpoint.
 * Sized so that the server is ready within seconds on two cores.
 */
public final class DefaultModel {
    private static final Logger LOG = Logger.getLogger(DefaultModel.class.getName());
    public static final String NAME = "rollout-default-qwen3-tiny";
    public static final long SEED = 20261126L;
    public static final RandomCheckpoint.Spec SPEC = new RandomCheckpoint.Spec(
            151936, 128, 384, 4, 4, 2, 32, 4096, List.of(151645, 151643), 0.15);
    private static final String TOKENIZER = "/dev/rollout/tokenizer/qwen3/";
    private static final String MARKER = "rollout-default-model.complete";

    private DefaultModel() {}

    /** Returns the checkpoint directory, writing it first if it is missing or incomplete. */
    public static Path materialize(Path cacheRoot) throws IOException {
        // the name changes with the spec and seed, so a cache from another version is never reused
        String key = Integer.toHexString((SPEC + "/" + SEED).hashCode());
        Path dir = cacheRoot.resolve(NAME + "-" + key);
        if (Files.exists(dir.resolve(MARKER))) return dir;
        long t0 = System.nanoTime();
        Path tmp = Files.createDirectories(cacheRoot).resolve(dir.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        RandomCheckpoint.write(tmp, SPEC, SEED);
        for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
            try (InputStream in = DefaultModel.class.getResourceAsStream(TOKENIZER + f)) {
                if (in == null) {
                    // a build that left the tokenizer out (to save 11 MB) still serves token ids
                    LOG.warning("no tokenizer packaged (" + TOKENIZER + f + "): the default model serves token ids only");
                    break;
                }
                Files.copy(in, tmp.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        Files.writeString(tmp.resolve(MARKER), SPEC + " seed=" + SEED + "\n");
        try {
            Files.move(tmp, dir, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException raced) {
            if (!Files.exists(dir.resolve(MARKER))) throw raced; // another process won; use theirs
        }
        LOG.info(() -> "wrote the default model to " + dir + " in " + (System.nanoTime() - t0) / 1_000_000 + " ms");
        return dir;
    }
}
