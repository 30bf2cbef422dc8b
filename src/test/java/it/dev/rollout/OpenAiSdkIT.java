package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The official OpenAI Node SDK (npm {@code openai}) against this server, unchanged:
 * src/test/node/openai-sdk.test.mjs under {@code node --test}. The SDK is installed into
 * target/openai-sdk on first use (npm caches it).
 */
class OpenAiSdkIT {
    static final String SDK = "openai@6.30.1";

    @Test
    void theOfficialSdkWorksUnchanged() throws Exception {
        Path dir = Path.of("target/openai-sdk");
        Files.createDirectories(dir);
        Files.copy(Path.of("src/test/node/openai-sdk.test.mjs"), dir.resolve("openai-sdk.test.mjs"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        if (!Files.exists(dir.resolve("node_modules/openai/package.json")))
            run(dir, List.of("npm", "install", "--no-audit", "--no-fund", "--prefix", ".", SDK), 300, "npm install " + SDK);
        Http.awaitReady();
        String out = run(dir, List.of("node", "--test", "openai-sdk.test.mjs"), 300, "node --test");
        assertTrue(out.contains("# pass 4") && out.contains("# fail 0"), out);
    }

    private static String run(Path dir, List<String> cmd, int seconds, String what) throws Exception {
        Path log = Files.createTempFile("openai-sdk-", ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("ROLLOUT_URL", Http.BASE);
        Process p = pb.start();
        boolean done = p.waitFor(seconds, TimeUnit.SECONDS);
        if (!done) p.destroyForcibly();
        String out = Files.readString(log);
        assertTrue(done, what + " did not finish in " + seconds + " s:\n" + out);
        assertEquals(0, p.exitValue(), what + " failed:\n" + out);
        return out;
    }
}
