package dev.rollout.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;

class LoadProgressTest {
    @Test
    void logsShareRateAndTimeLeftThenASummary() {
        List<String> lines = new ArrayList<>();
        Handler h = new Handler() {
            @Override public void publish(LogRecord r) { lines.add(r.getMessage()); }
            @Override public void flush() {}
            @Override public void close() {}
        };
        Logger log = Logger.getLogger(LoadProgress.class.getName());
        log.addHandler(h);
        try {
            LoadProgress p = new LoadProgress("/ckpt", 4, 4_000_000, 0);
            for (int i = 0; i < 4; i++) p.advance(1_000_000);
            p.done();
        } finally {
            log.removeHandler(h);
        }
        assertEquals("loading /ckpt: 4 tensors, 4.0 MB", lines.get(0));
        // a line per tensor but the last (the summary says it), as the interval here is 0
        assertEquals(5, lines.size(), lines.toString());
        assertTrue(lines.get(1).matches("loading /ckpt: 25% \\(1 of 4 tensors, 1\\.0 of 4\\.0 MB\\) at \\d+ MB/s, about \\d+ s left"), lines.get(1));
        assertTrue(lines.get(3).startsWith("loading /ckpt: 75% (3 of 4 tensors"), lines.get(3));
        assertTrue(lines.get(4).matches("loaded /ckpt: 4 tensors, 4\\.0 MB in \\d+\\.\\d s \\(\\d+ MB/s\\)"), lines.get(4));
    }
}
