package dev.rollout;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;

/**
 * Temporary directories for tests and benchmarks that are deleted when the JVM exits: the
 * checkpoints, Liberty user directories and tool models the ITs write (40 MB a checkpoint, some
 * 0.6 GB a full run) were left behind and filled the development machine's disk over runs.
 */
public final class TempDirs {
    private TempDirs() {}

    /** A new directory under the system's temporary directory, named {@code prefix} and a number. */
    public static Path deletedAtExit(String prefix) throws IOException {
        Path dir = Files.createTempDirectory(prefix);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> delete(dir)));
        return dir;
    }

    /** Best effort: what cannot be deleted stays where it is. */
    private static void delete(Path dir) {
        try (var paths = Files.walk(dir)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | UncheckedIOException ignored) {
            // nothing more to do: the directory is temporary
        }
    }
}
