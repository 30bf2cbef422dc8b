package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The live status page at {@code /} in headless Chromium (Debian's {@code chromium}, driven by
 * npm {@code playwright-core} with the system browser): it loads, shows the model, and its numbers
 * and push history change after generations and a weight push (src/test/node/status-page.test.mjs).
 * It leaves a screenshot in target/status-page.png (docs/status-page.png is one of them).
 */
@ExtendWith(RestoresServedWeights.class)
class StatusPageIT {
    static final Path CHROMIUM = Path.of(System.getProperty("chromium", "/usr/bin/chromium"));

    @Test
    void thePageShowsTheServerLive() throws Exception {
        assertTrue(Files.isExecutable(CHROMIUM), CHROMIUM + " is missing: install Debian's chromium (.ci/run does), or pass -Dchromium=PATH");
        Path shot = Path.of("target/status-page.png").toAbsolutePath();
        Files.deleteIfExists(shot);
        NodeTests.assertPasses("status-page", List.of("playwright-core@1.57.0"), "status-page.test.mjs", 1,
                Map.of("CHROMIUM", CHROMIUM.toString(), "ADMIN_KEY", Http.ADMIN_KEY, "SCREENSHOT", shot.toString()));
        assertTrue(Files.size(shot) > 10_000, "no screenshot at " + shot);
    }
}
