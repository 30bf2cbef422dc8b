package dev.rollout.constrain;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Compiled constraints for one vocabulary, by kind and source text, least recently used evicted
 * first. An RL batch sends the same schema hundreds of times; each compiles once, and its
 * {@link TokenIndex} keeps the masks computed so far for every later request. Refusals are kept
 * too, so a hostile pattern sent again costs a lookup, not another compilation to the limits.
 * A compilation runs outside the lock; two threads that miss on the same text at once both
 * compile it, and the first stored wins.
 */
public final class ConstraintCache {
    private record Key(String kind, String source) {}

    private final Vocabulary vocab;
    private final ConstraintLimits limits;
    private final Map<Key, Object> entries;  // TokenIndex or ConstraintException

    public ConstraintCache(Vocabulary vocab, ConstraintLimits limits, int capacity) {
        this.vocab = vocab;
        this.limits = limits;
        this.entries = new LinkedHashMap<>(16, 0.75f, true) {
            private static final long serialVersionUID = 1L;

            @Override
            protected boolean removeEldestEntry(Map.Entry<Key, Object> eldest) {
                return size() > capacity;
            }
        };
    }

    public TokenIndex regex(String regex) {
        return get(new Key("regex", regex));
    }

    public TokenIndex jsonSchema(String schema) {
        return get(new Key("json_schema", schema));
    }

    public TokenIndex ebnf(String grammar) {
        return get(new Key("ebnf", grammar));
    }

    public TokenIndex structuralTag(String tag) {
        return get(new Key("structural_tag", tag));
    }

    private TokenIndex get(Key key) {
        Object hit;
        synchronized (entries) {
            hit = entries.get(key);
        }
        if (hit == null) {
            try {
                Constraint c = switch (key.kind()) {
                    case "regex" -> Constraint.regex(key.source(), limits);
                    case "ebnf" -> Constraint.ebnf(key.source(), limits);
                    case "structural_tag" -> Constraint.structuralTag(key.source(), limits);
                    default -> Constraint.jsonSchema(key.source(), limits);
                };
                hit = c.index(vocab);
            } catch (ConstraintException e) {
                hit = e;
            }
            synchronized (entries) {
                Object raced = entries.putIfAbsent(key, hit);
                if (raced != null) hit = raced;
            }
        }
        if (hit instanceof ConstraintException e) throw new ConstraintException(e.getMessage());
        return (TokenIndex) hit;
    }

    public int size() {
        synchronized (entries) {
            return entries.size();
        }
    }
}
