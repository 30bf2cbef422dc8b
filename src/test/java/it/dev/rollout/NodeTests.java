package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs a test file of src/test/node under {@code node --test} in a folder of target/ where its
 * npm packages are installed on first use (npm caches them), against the ITs' server. The folder
 * gets every module of src/test/node, so that a test can import the helpers beside it.
 */
final class NodeTests {
    private NodeTests() {}

    /** Runs {@code file} in target/{@code folder} with {@code packages} installed; asserts {@code tests} passed and none failed. */
    static String assertPasses(String folder, List<String> packages, String file, int tests, Map<String, String> env) throws Exception {
        Path dir = Path.of("target", folder);
        Files.createDirectories(dir);
        try (Stream<Path> modules = Files.list(Path.of("src/test/node"))) {
            for (Path m : modules.filter(p -> p.toString().endsWith(".mjs")).toList())
                Files.copy(m, dir.resolve(m.getFileName()), StandardCopyOption.REPLACE_EXISTING);
        }
        // the missing ones in one npm install: one resolution of the tree, not one per package
        List<String> missing = packages.stream()
                .filter(pkg -> !Files.exists(dir.resolve("node_modules").resolve(pkg.substring(0, pkg.lastIndexOf('@'))).resolve("package.json")))
                .toList();
        if (!missing.isEmpty()) {
            List<String> cmd = new java.util.ArrayList<>(List.of("npm", "install", "--no-audit", "--no-fund", "--prefix", "."));
            cmd.addAll(missing);
            run(dir, cmd, 300, "npm install " + String.join(" ", missing), env);
        }
        Http.awaitReady();
        String out = run(dir, List.of("node", "--test", file), 300, "node --test " + file, env);
        assertTrue(out.contains("# pass " + tests) && out.contains("# fail 0"), out);
        return out;
    }

    private static String run(Path dir, List<String> cmd, int seconds, String what, Map<String, String> env) throws Exception {
        Path log = Files.createTempFile("node-test-", ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("ROLLOUT_URL", Http.BASE);
        pb.environment().putAll(env);
        Process p = pb.start();
        boolean done = p.waitFor(seconds, TimeUnit.SECONDS);
        if (!done) p.destroyForcibly();
        String out = Files.readString(log);
        assertTrue(done, what + " did not finish in " + seconds + " s:\n" + out);
        assertEquals(0, p.exitValue(), what + " failed:\n" + out);
        return out;
    }
}
