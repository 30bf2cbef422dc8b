package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.bench.ToolModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** examples/python (the Python client, the veRL-shaped adapter, the agent loop) run by python3 against this server. */
@ExtendWith(RestoresServedWeights.class)
class PythonClientIT {
    @Test
    void theExamplesTestsPass() throws Exception {
        Path ckpt = Checkpoints.other(60);
        int[] expected = Checkpoints.greedy(Checkpoints.engine(ckpt), 12);
        Path log = Files.createTempFile("python-client-", ".log");
        ProcessBuilder pb = new ProcessBuilder("python3", "test_client.py").directory(Path.of("examples/python").toFile())
                .redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("ROLLOUT_URL", Http.BASE);
        pb.environment().put("ROLLOUT_ADMIN_KEY", Http.ADMIN_KEY);
        pb.environment().put("CHECKPOINT", ckpt.toString());
        pb.environment().put("PROMPT", ids(Checkpoints.PROMPT));
        pb.environment().put("EXPECTED", ids(expected));
        pb.environment().put("TOOL_MODEL", ToolModel.materialize().toString());
        Process p = pb.start();
        boolean done = p.waitFor(300, TimeUnit.SECONDS);
        if (!done) p.destroyForcibly();
        String out = Files.readString(log);
        assertTrue(done, "python3 test_client.py did not finish in 300 s:\n" + out);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("Ran 6 tests") && out.contains("OK"), out);
    }

    private static String ids(int[] ids) {
        return Arrays.stream(ids).mapToObj(String::valueOf).collect(Collectors.joining(","));
    }
}
