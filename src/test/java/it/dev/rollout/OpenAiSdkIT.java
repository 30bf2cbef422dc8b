package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.bench.ToolModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The official OpenAI Node SDK (npm {@code openai}) against this server, unchanged: the tests
 * under src/test/node run by {@code node --test}. The SDK is installed into target/openai-sdk on
 * first use (npm caches it). Completions run on the served weights; chat completions on the
 * tool-calling test model, which makes real tool calls.
 */
@ExtendWith(RestoresServedWeights.class)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class OpenAiSdkIT {
    static final String SDK = "openai@6.30.1";

    @Test
    @Order(1)
    void completions() throws Exception {
        assertPasses("openai-sdk.test.mjs", 4);
    }

    @Test
    @Order(2)
    void chatCompletionsWithToolCalls() throws Exception {
        Http.admin("/update_weights_from_disk", "{\"model_path\": \"" + ToolModel.materialize() + "\", \"weight_version\": \"tool-model\"}");
        assertPasses("openai-chat.test.mjs", 5);
    }

    private static void assertPasses(String file, int tests) throws Exception {
        Path dir = Path.of("target/openai-sdk");
        Files.createDirectories(dir);
        Files.copy(Path.of("src/test/node", file), dir.resolve(file), StandardCopyOption.REPLACE_EXISTING);
        if (!Files.exists(dir.resolve("node_modules/openai/package.json")))
            run(dir, List.of("npm", "install", "--no-audit", "--no-fund", "--prefix", ".", SDK), 300, "npm install " + SDK);
        Http.awaitReady();
        String out = run(dir, List.of("node", "--test", file), 300, "node --test " + file);
        assertTrue(out.contains("# pass " + tests) && out.contains("# fail 0"), out);
    }

    static String run(Path dir, List<String> cmd, int seconds, String what) throws Exception {
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
