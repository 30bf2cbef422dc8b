package dev.rollout.engine;

import java.util.Set;

/**
 * Which requests an abort hits, as data: every one, those whose id starts with a prefix (SGLang's
 * rule for {@code /abort_request}), or an exact set of ids.
 */
public record RequestMatch(boolean all, String prefix, Set<String> ids) {
    public RequestMatch {
        ids = ids == null ? Set.of() : Set.copyOf(ids);
    }

    public static RequestMatch every() {
        return new RequestMatch(true, null, Set.of());
    }

    public static RequestMatch prefix(String prefix) {
        return new RequestMatch(false, prefix, Set.of());
    }

    public static RequestMatch ids(Set<String> ids) {
        return new RequestMatch(false, null, ids);
    }

    public boolean test(String rid) {
        return all || (prefix != null && rid.startsWith(prefix)) || ids.contains(rid);
    }
}
