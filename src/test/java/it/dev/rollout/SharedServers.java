package it.dev.rollout;

import dev.rollout.client.ServerProcess;
import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * Second Liberty servers of the build that several test classes ask for with the same settings:
 * each is launched once per test JVM, on first use, and stopped when the JVM exits. A launch takes
 * some 20 s on a CI machine; a class that changes a shared server's state must put it back (as the
 * shared IT server's users do).
 */
public final class SharedServers {
    private static final Map<String, ServerProcess> LAUNCHED = new HashMap<>();

    private SharedServers() {}

    /** A server with {@code env} (ROLLOUT_* settings) and the IT server's configuration (its admin key included), ready when this returns. */
    public static synchronized ServerProcess launched(String name, Map<String, String> env) throws IOException {
        String key = new TreeMap<>(env).toString();
        ServerProcess s = LAUNCHED.get(key);
        if (s == null || !s.isAlive()) {
            ServerProcess.Spec spec = ServerProcessIT.secondServer(name, ServerProcessIT.freePort());
            for (Map.Entry<String, String> e : env.entrySet()) spec = spec.withEnvironment(e.getKey(), e.getValue());
            ServerProcess started = ServerProcess.start(spec);
            Runtime.getRuntime().addShutdownHook(new Thread(started::close, "stop-" + name));
            LAUNCHED.put(key, started);
            s = started;
        }
        return s;
    }

    /** rollout.weights-host-backup=true (the IT server keeps the default, off): HostBackupIT and SGLang's CPU-backup case. */
    public static ServerProcess hostBackup() throws IOException {
        return launched("host-backup", Map.of("ROLLOUT_WEIGHTS_HOST_BACKUP", "true"));
    }
}
