package dev.rollout.client;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A rollout server that this JVM starts as a child process, as a trainer does when it owns its
 * rollout server: a Liberty server ({@code wlp/bin/server run NAME}) or the GPU distribution's
 * {@code start.sh}, configured through environment variables ({@code ROLLOUT_MODEL_PATH},
 * {@code HTTP_PORT}, any {@code ROLLOUT_*} setting). {@link #start} returns once the server is
 * ready and fails early, with the exit code and the end of the log, if the process dies first;
 * {@link #close} stops it and waits for it to go.
 */
public final class ServerProcess implements AutoCloseable {
    private static final Duration STOP_TIMEOUT = Duration.ofSeconds(60);

    /**
     * How to start a server.
     *
     * @param command        the program and its arguments
     * @param environment    added to this process's environment
     * @param httpPort       the port the server listens on (the command must be told so, e.g. by HTTP_PORT)
     * @param log            where its standard output and error go (appended)
     * @param startupTimeout how long it may take to become ready
     * @param scratch        a directory made for this server alone, deleted when it stops, or null
     */
    public record Spec(List<String> command, Map<String, String> environment, int httpPort, Path log, Duration startupTimeout,
                       Path scratch) {
        public Spec {
            command = List.copyOf(command);
            environment = Map.copyOf(environment);
        }

        public Spec(List<String> command, Map<String, String> environment, int httpPort, Path log, Duration startupTimeout) {
            this(command, environment, httpPort, log, startupTimeout, null);
        }

        /**
         * A Liberty server of the installation {@code wlp} on {@code httpPort}, HTTPS off, its log
         * in a temporary file, five minutes to start (a large checkpoint loads and warms up first).
         */
        public static Spec liberty(Path wlp, String serverName, int httpPort) {
            return onPort(List.of(wlp.resolve("bin/server").toString(), "run", serverName), httpPort);
        }

        /**
         * The runnable archive ({@code ./mvnw package} makes target/rollout-server.jar) under this
         * JVM's {@code java}, on {@code httpPort}, the same defaults; it unpacks into a temporary
         * directory of its own (some 360 MB), deleted when the server stops.
         */
        public static Spec runnableJar(Path jar, int httpPort) {
            String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
            try {
                Path extract = Files.createTempDirectory("rollout-jar-");
                Spec spec = onPort(List.of(java, "-jar", jar.toString()), httpPort).withEnvironment("WLP_JAR_EXTRACT_DIR", extract.toString());
                return new Spec(spec.command, spec.environment, spec.httpPort, spec.log, spec.startupTimeout, extract);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        /** The GPU distribution's {@code start.sh} (tools/dist) on {@code httpPort}, the same defaults. */
        public static Spec distribution(Path startScript, int httpPort) {
            return onPort(List.of(startScript.toString()), httpPort);
        }

        private static Spec onPort(List<String> command, int httpPort) {
            return new Spec(command, Map.of("HTTP_PORT", Integer.toString(httpPort), "HTTPS_PORT", "-1"), httpPort, tempLog(),
                    Duration.ofMinutes(5));
        }

        /** The same with one more environment variable, e.g. {@code ROLLOUT_MODEL_PATH}. */
        public Spec withEnvironment(String name, String value) {
            Map<String, String> env = new LinkedHashMap<>(environment);
            env.put(name, value);
            return new Spec(command, env, httpPort, log, startupTimeout, scratch);
        }

        public Spec withStartupTimeout(Duration timeout) {
            return new Spec(command, environment, httpPort, log, timeout, scratch);
        }

        public Spec withLog(Path file) {
            return new Spec(command, environment, httpPort, file, startupTimeout, scratch);
        }

        private static Path tempLog() {
            try {
                return Files.createTempFile("rollout-server-", ".log");
            } catch (IOException e) {
                throw new RolloutClientException("cannot create a log file for the server process: " + e.getMessage(), 0, e);
            }
        }
    }

    private final Spec spec;
    private final Process process;
    private final URI url;

    private ServerProcess(Spec spec, Process process) {
        this.spec = spec;
        this.process = process;
        this.url = URI.create("http://localhost:" + spec.httpPort());
    }

    /** Starts the server and waits until it is ready; stops it again and throws if it is not ready in time. */
    public static ServerProcess start(Spec spec) {
        ProcessBuilder pb = new ProcessBuilder(spec.command()).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(spec.log().toFile()));
        pb.environment().putAll(spec.environment());
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new RolloutClientException("cannot start " + spec.command() + ": " + e.getMessage(), 0, e);
        }
        ServerProcess server = new ServerProcess(spec, p);
        try {
            server.awaitReady();
            return server;
        } catch (RuntimeException e) {
            server.close();
            throw e;
        }
    }

    /** Polls readiness in short slices, so that a process that dies is reported at once, not at the timeout. */
    private void awaitReady() {
        RolloutClient probe = RolloutClient.connect(url);
        long deadline = System.nanoTime() + spec.startupTimeout().toNanos();
        while (true) {
            if (!process.isAlive())
                throw new RolloutClientException("the server process " + spec.command() + " exited with code " + process.exitValue()
                        + " before it was ready; the end of " + spec.log() + ":\n" + logTail(20), 0, null);
            try {
                probe.awaitReady(Duration.ofSeconds(1));
                return;
            } catch (RolloutClientException notYet) {
                if (System.nanoTime() > deadline)
                    throw new RolloutClientException("the server at " + url + " was not ready " + spec.startupTimeout().toSeconds()
                            + " s after it started; the end of " + spec.log() + ":\n" + logTail(20), 0, notYet);
            }
        }
    }

    public URI url() {
        return url;
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    public Path log() {
        return spec.log();
    }

    /**
     * Stops the server: a polite stop first (Liberty shuts down cleanly on SIGTERM), then, after a
     * minute, a forced one. Its launcher's children (the JVM under Liberty's script) go too, and
     * then its scratch directory.
     */
    @Override
    public void close() {
        List<ProcessHandle> all = new ArrayList<>(process.descendants().toList());
        all.add(process.toHandle());
        all.forEach(ProcessHandle::destroy);
        long deadline = System.nanoTime() + STOP_TIMEOUT.toNanos();
        for (ProcessHandle h : all) {
            long left = Math.max(0, deadline - System.nanoTime());
            try {
                h.onExit().get(left, TimeUnit.NANOSECONDS);
            } catch (Exception stillThere) {
                h.destroyForcibly();
            }
        }
        if (spec.scratch() != null) deleteTree(spec.scratch());
    }

    /** Best effort: what cannot be deleted stays in the temporary directory. */
    private static void deleteTree(Path root) {
        try (var paths = Files.walk(root)) {
            paths.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException | UncheckedIOException ignored) {
            // nothing more to do: the directory is temporary
        }
    }

    /** The last {@code n} lines of the server's log. */
    String logTail(int n) {
        try {
            List<String> lines = new String(Files.readAllBytes(spec.log()), StandardCharsets.UTF_8).lines().toList();
            return String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
        } catch (IOException e) {
            return "(log unreadable: " + e.getMessage() + ")";
        }
    }
}
