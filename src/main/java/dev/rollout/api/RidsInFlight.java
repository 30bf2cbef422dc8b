package dev.rollout.api;

import jakarta.enterprise.context.ApplicationScoped;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The request ids of the generations that are running, across {@code /generate} and the OpenAI
 * routes. SGLang refuses a request whose rid is already in flight: two sequences under one rid
 * would make {@code /abort_request} and the answers ambiguous. Claimed before a generation is
 * submitted, released once its relay has ended (after any abort it sent, so the engine has seen
 * that abort before a new request may reuse the rid).
 */
@ApplicationScoped
public class RidsInFlight {
    private final Set<String> running = ConcurrentHashMap.newKeySet();

    /** Claims every rid or none; a 400 naming the first one that is taken. */
    void claim(Collection<String> rids) {
        List<String> claimed = new ArrayList<>(rids.size());
        for (String rid : rids) {
            if (!running.add(rid)) {
                running.removeAll(claimed);
                throw ApiException.badRequest("Duplicate request ID detected: a request with rid '" + rid
                        + "' is already running; wait for it to finish or send another rid");
            }
            claimed.add(rid);
        }
    }

    void release(Collection<String> rids) {
        running.removeAll(rids);
    }

    /** How many rids are claimed now (for tests). */
    int size() {
        return running.size();
    }
}
