package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * The live status page at {@code /} in headless Chromium, driven by npm {@code playwright-core}:
 * it loads, shows the model, and its numbers and push history change after generations and a
 * weight push (src/test/node/status-page.test.mjs). It leaves a screenshot in
 * target/status-page.png (docs/status-page.png is one of them).
 * <p>
 * The browser: {@code -Dchromium=PATH} if given; else Debian's {@code /usr/bin/chromium} where it
 * is installed; else the headless Chromium that npm {@code @sparticuz/chromium} ships with its own
 * libraries (src/test/node/packaged-chromium.mjs), so that {@code ./mvnw verify} needs no browser
 * on the machine. {@code -Dchromium=npm} takes the npm one even where a system browser exists.
 */
@ExtendWith(RestoresServedWeights.class)
class StatusPageIT {
    static final String PLAYWRIGHT = "playwright-core@1.57.0";
    /** Chromium 143, the version that playwright-core 1.57 is made for (its browsers.json: 143.0.7499.4); runs on Node.js 20.11+. */
    static final String PACKAGED_CHROMIUM = "@sparticuz/chromium@143.0.4";
    static final Path SYSTEM_CHROMIUM = Path.of("/usr/bin/chromium");

    @Test
    void thePageShowsTheServerLive() throws Exception {
        String chosen = System.getProperty("chromium", "");
        Path browser = chosen.isEmpty() ? (Files.isExecutable(SYSTEM_CHROMIUM) ? SYSTEM_CHROMIUM : null)
                : chosen.equals("npm") ? null : Path.of(chosen);
        if (browser != null) assertTrue(Files.isExecutable(browser), "-Dchromium=" + browser + " is not an executable file");
        Path shot = Path.of("target/status-page.png").toAbsolutePath();
        Files.deleteIfExists(shot);
        NodeTests.assertPasses("status-page", browser == null ? List.of(PLAYWRIGHT, PACKAGED_CHROMIUM) : List.of(PLAYWRIGHT),
                "status-page.test.mjs", 1,
                Map.of("CHROMIUM", browser == null ? "" : browser.toString(), "ADMIN_KEY", Http.ADMIN_KEY, "SCREENSHOT", shot.toString()));
        assertTrue(Files.size(shot) > 10_000, "no screenshot at " + shot);
    }
}
