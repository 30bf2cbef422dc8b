package dev.rollout.ranks;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.logging.Logger;

/**
 * The worker processes of one node: a JVM per tensor-parallel rank, of the same build as the
 * one that starts them ({@link Worker} as its main class), watched so that a rank that exits is
 * reported at once, naming it, rather than found out at the next collective's deadline. The
 * server starts its node's workers; on the other nodes {@link Worker}'s node mode does.
 */
public final class WorkerProcesses implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(WorkerProcesses.class.getName());
    /** How long a worker that was told to stop has to exit before it is killed. */
    private static final long STOP_GRACE_MS = 10_000;

    private final Map<Integer, Process> ranks = new LinkedHashMap<>();
    private volatile boolean closing;
    private volatile String firstExit;

    /**
     * How to start a JVM like this one.
     *
     * @param jvmArgs   the options worth handing on (the heap, native-library paths, JavaCPP's settings)
     * @param classpath the build's classes and jars
     */
    public record Launch(Path java, List<String> jvmArgs, String classpath) {
        public Launch {
            jvmArgs = List.copyOf(jvmArgs);
        }

        /** This JVM's java and the options of its own that a worker needs, on {@code classpath}. */
        public static Launch likeThisJvm(String classpath) {
            List<String> args = new ArrayList<>();
            for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments())
                if (handedOn(a)) args.add(a);
            return new Launch(Path.of(System.getProperty("java.home"), "bin", "java"), args, classpath);
        }

        /**
         * Options a worker needs as the server has them. Not the rest: an application server's
         * own (its agent, its log manager) would break a plain JVM.
         */
        static boolean handedOn(String arg) {
            for (String p : List.of("-Xmx", "-Xms", "-Xss", "-XX:MaxDirectMemorySize", "-Djava.library.path=", "-Dorg.bytedeco.",
                    "-Djdk.lang.processReaperUseDefaultStackSize", "-DRUST_FLAVOR=", "-Dfile.encoding=", "--enable-native-access"))
                if (arg.startsWith(p)) return true;
            return false;
        }
    }

    private WorkerProcesses() {}

    /**
     * Starts a worker for each of {@code ranks}, with {@code settings} (rollout.* keys) as system
     * properties and its own rollout.tp-rank; their output goes to this process's. {@code onExit}
     * hears, once per rank and from another thread, of any that exits before {@link #close}:
     * "tensor-parallel rank R (pid P) exited with code C".
     */
    public static WorkerProcesses start(Launch launch, Map<String, String> settings, List<Integer> ranks, Consumer<String> onExit)
            throws IOException {
        WorkerProcesses w = new WorkerProcesses();
        try {
            for (int rank : ranks) {
                List<String> cmd = new ArrayList<>();
                cmd.add(launch.java().toString());
                cmd.addAll(launch.jvmArgs());
                settings.forEach((k, v) -> cmd.add("-D" + k + "=" + v));
                cmd.add("-D" + Worker.RANK_KEY + "=" + rank);
                // every line names its rank: the workers share the server's output
                cmd.add("-Djava.util.logging.SimpleFormatter.format=[tp rank " + rank + "] %1$tFT%1$tT %4$s %3$s: %5$s%6$s%n");
                cmd.addAll(List.of("-cp", launch.classpath(), Worker.class.getName()));
                Process p = new ProcessBuilder(cmd).inheritIO().start();
                w.ranks.put(rank, p);
                p.onExit().thenAccept(done -> {
                    if (w.closing) return;
                    String why = "tensor-parallel rank " + rank + " (pid " + done.pid() + ") exited with code " + done.exitValue();
                    if (w.firstExit == null) w.firstExit = why;
                    LOG.severe(why);
                    onExit.accept(why);
                });
                LOG.info(() -> "started tensor-parallel rank " + rank + " (pid " + p.pid() + ")");
            }
        } catch (IOException | RuntimeException e) {
            w.close();
            throw e;
        }
        return w;
    }

    /** From now on the workers are expected to exit (rank 0 stops them): their exits are not reported. */
    public void expectExit() {
        closing = true;
    }

    /** How the first worker to exit did so, or null while all run. */
    public String firstExit() {
        return firstExit;
    }

    /** The process of {@code rank}, or null if this node does not run it. */
    public Process process(int rank) {
        return ranks.get(rank);
    }

    /** Waits for every worker to exit (the node mode's wait); returns the first one's nonzero exit code, or 0. */
    int awaitAll() throws InterruptedException {
        int code = 0;
        for (Process p : ranks.values()) {
            int c = p.waitFor();
            if (code == 0) code = c;
        }
        return code;
    }

    /**
     * Lets the workers exit (rank 0 has sent them a stop), then kills those that did not within
     * a grace period. Their exits are no longer reported.
     */
    @Override
    public void close() {
        closing = true;
        long deadline = System.currentTimeMillis() + STOP_GRACE_MS;
        for (Process p : ranks.values()) {
            try {
                if (!p.waitFor(Math.max(0, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS)) p.destroy();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                p.destroy();
            }
        }
        for (Process p : ranks.values()) {
            try {
                if (!p.waitFor(2, TimeUnit.SECONDS)) p.destroyForcibly();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                p.destroyForcibly();
            }
        }
    }
}
