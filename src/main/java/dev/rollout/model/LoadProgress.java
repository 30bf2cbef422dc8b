package dev.rollout.model;

import java.util.logging.Logger;

/**
 * Logs a checkpoint load as it goes: tensors and bytes loaded, the share done, the rate and the
 * time left, every few seconds, so that an operator watching a 70 GB model load sees it move.
 */
final class LoadProgress {
    private static final Logger LOG = Logger.getLogger(LoadProgress.class.getName());
    static final long EVERY_NANOS = 3_000_000_000L;

    private final String what;
    private final int tensors;
    private final long bytes, everyNanos;
    private final long start = System.nanoTime();
    private long lastLog = start;
    private int doneTensors;
    private long doneBytes;

    LoadProgress(String what, int tensors, long bytes) {
        this(what, tensors, bytes, EVERY_NANOS);
    }

    /** With a line at most every {@code everyNanos} (tests log every tensor). */
    LoadProgress(String what, int tensors, long bytes, long everyNanos) {
        this.what = what;
        this.tensors = tensors;
        this.bytes = bytes;
        this.everyNanos = everyNanos;
        LOG.info(() -> String.format("loading %s: %d tensors, %.1f MB", what, tensors, bytes / 1e6));
    }

    void advance(long tensorBytes) {
        doneTensors++;
        doneBytes += tensorBytes;
        long now = System.nanoTime();
        if (now - lastLog < everyNanos || doneTensors == tensors) return;
        lastLog = now;
        double s = (now - start) / 1e9, rate = doneBytes / Math.max(s, 1e-9);
        LOG.info(() -> String.format("loading %s: %.0f%% (%d of %d tensors, %.1f of %.1f MB) at %.0f MB/s, about %.0f s left",
                what, 100.0 * doneBytes / Math.max(bytes, 1), doneTensors, tensors, doneBytes / 1e6, bytes / 1e6, rate / 1e6,
                (bytes - doneBytes) / Math.max(rate, 1)));
    }

    void done() {
        double s = (System.nanoTime() - start) / 1e9;
        LOG.info(() -> String.format("loaded %s: %d tensors, %.1f MB in %.1f s (%.0f MB/s)", what, doneTensors, doneBytes / 1e6, s,
                doneBytes / 1e6 / Math.max(s, 1e-9)));
    }
}
