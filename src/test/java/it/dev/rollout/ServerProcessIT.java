package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.TempDirs;
import dev.rollout.client.Generation;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.RolloutClientException;
import dev.rollout.client.RolloutRouter;
import dev.rollout.client.Sampling;
import dev.rollout.client.ServerProcess;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The client starting a server of its own, as a trainer that owns its rollout server does: a
 * second Liberty server of the build's installation, with the test server's configuration, on a
 * port of its own; stopped by the client's close(), after which a router over both servers sends
 * everything to the one left. And a server that dies while starting.
 */
public class ServerProcessIT {
    static final Path IT_SERVER = Path.of(System.getProperty("it.server.dir", "target/liberty/wlp/usr/servers/itServer"));

    /**
     * What a second server's JVM and its tensor-parallel workers run with, through the environment
     * (JAVA_TOOL_OPTIONS, which the workers inherit): C1 only. These servers live for a test or a
     * class, and the model's arithmetic is libtorch's; C2 spent half of a start's CPU time (41 s of
     * CPU to ready against 21 s on the 2-core machine) compiling Liberty's start-up code.
     */
    static final String SECOND_SERVER_JVM_OPTIONS = "-XX:TieredStopAtLevel=1";

    /**
     * A second Liberty server of the build's installation with the test server's configuration
     * (the application is its loose archive, which points at target/), on a free port.
     */
    public static ServerProcess.Spec secondServer(String name, int port) throws IOException {
        Path wlp = IT_SERVER.getParent().getParent().getParent();
        Path userDir = TempDirs.deletedAtExit("rollout-" + name + "-");
        Path server = userDir.resolve("servers/" + name);
        Files.createDirectories(server.resolve("apps"));
        for (String f : List.of("server.xml", "server.env", "jvm.options", "apps/rollout-server.war.xml"))
            if (Files.exists(IT_SERVER.resolve(f))) Files.copy(IT_SERVER.resolve(f), server.resolve(f));
        return ServerProcess.Spec.liberty(wlp, name, port).withEnvironment("WLP_USER_DIR", userDir.toString())
                .withEnvironment("JAVA_TOOL_OPTIONS", SECOND_SERVER_JVM_OPTIONS).withStartupTimeout(Duration.ofMinutes(3));
    }

    @Test
    void launchesAServerAndStopsItOnClose() throws Exception {
        int port = freePort();
        ServerProcess.Spec spec = secondServer("launched", port);
        RolloutClient.Options options = RolloutClient.Options.defaults().withAdminApiKey(Http.ADMIN_KEY);
        ServerProcess process;
        RolloutRouter router;
        try (RolloutClient client = RolloutClient.launch(spec, options)) {
            process = client.serverProcess();
            assertTrue(process.isAlive());
            assertEquals(port, process.url().getPort());
            Generation g = client.generate(Checkpoints.PROMPT, Sampling.greedy(4));
            assertEquals(4, g.outputIds().length);
            assertEquals("default", g.weightVersion(), "a fresh server serves its checkpoint's weights");
            client.pauseGeneration("abort");  // a control call: the admin key came with the configuration
            client.continueGeneration();
            router = new RolloutRouter(List.of(RolloutClient.connect(URI.create(Http.BASE)), client), Duration.ofMinutes(5));
            for (int i = 0; i < 4; i++) router.generateAsync(null, Checkpoints.PROMPT, Sampling.greedy(2)).get();
            assertTrue(router.dispatched(0) > 0 && router.dispatched(1) > 0, "two real servers share the calls");
        }
        assertFalse(process.isAlive(), "close() stops the server");
        assertFalse(listening(port), "and its port is closed");
        long before = router.dispatched(0);
        for (int i = 0; i < 4; i++) assertEquals(2, router.generateAsync(null, Checkpoints.PROMPT, Sampling.greedy(2)).get().outputIds().length);
        assertEquals(before + 4, router.dispatched(0), "with one replica gone, the other serves every call");
        assertFalse(router.available(1), "ties rotate, so a call went to the stopped one and found it gone");
    }

    @Test
    void aServerThatDiesWhileStartingFailsAtOnceWithItsLog() throws Exception {
        ServerProcess.Spec spec = new ServerProcess.Spec(List.of("sh", "-c", "echo 'no model at /nowhere' >&2; exit 3"),
                java.util.Map.of(), freePort(), Files.createTempFile("rollout-failing-", ".log"), Duration.ofMinutes(5));
        long t0 = System.nanoTime();
        RolloutClientException e = assertThrows(RolloutClientException.class, () -> ServerProcess.start(spec));
        assertTrue((System.nanoTime() - t0) / 1e9 < 30, "reported when the process exits, not at the five-minute timeout");
        assertTrue(e.getMessage().contains("exited with code 3"), e.getMessage());
        assertTrue(e.getMessage().contains("no model at /nowhere"), "the message carries the end of the log: " + e.getMessage());
    }

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    static boolean listening(int port) {
        try (Socket s = new Socket("localhost", port)) {
            return true;
        } catch (IOException refused) {
            return false;
        }
    }
}
