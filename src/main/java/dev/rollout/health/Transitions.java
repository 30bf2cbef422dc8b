package dev.rollout.health;

import java.util.concurrent.atomic.AtomicReference;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Logs a probe's status when it changes, once, with the reason. Kubernetes probes every few
 * seconds; a server that waits for a weight push would otherwise log a line per probe (Liberty's
 * own CWMMH0052W per DOWN answer, which server.xml hides for that reason).
 */
final class Transitions {
    private static final Logger LOG = Logger.getLogger(Transitions.class.getName());

    private final String probe;
    private final AtomicReference<Boolean> last = new AtomicReference<>();

    Transitions(String probe) {
        this.probe = probe;
    }

    /** Records this answer; logs it if it differs from the last one (the first DOWN included, the first UP not). */
    void report(boolean up, String why) {
        Boolean before = last.getAndSet(up);
        if (before != null && before == up) return;
        if (before == null && up) return;  // starting UP is the normal case, not news
        LOG.log(up ? Level.INFO : Level.WARNING, () -> probe + " is " + (up ? "UP" : "DOWN") + (why == null || why.isEmpty() ? "" : ": " + why));
    }
}
