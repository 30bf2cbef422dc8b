package dev.rollout.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Random schemas of the supported subset, random candidate values (most shaped by the schema, some
 * not), written compactly: the DFA must accept exactly the candidates a reference validator, written
 * here for the subset, accepts. The validator states the language's deliberate restrictions: an
 * object's keys in the schema's order and no others, integers as Longs, maxLength in UTF-16 units. {@code -Dconstrain.fuzz.scale=N}.
 */
class JsonSchemaFuzzTest {
    static final int SCALE = Integer.getInteger("constrain.fuzz.scale", 1);
    static final List<String> KEYS = List.of("a", "b", "c d", "q\"", "é");
    static final List<String> CHARS = List.of("a", "b", "\"", "\\", "\n", "é", "😀", "\u0001", "1", " ");
    static final List<String> PATTERNS = List.of("^[ab]+$", "a", "^a", "b$", "^(a|é)*$", "\\d", "^\"", "\\\\", "^[^a]{2}$");

    record Case(Map<String, Object> root, Object schema) {}

    @Test
    void acceptsExactlyTheValidValues() {
        Random r = new Random(42);
        int schemas = 250 * SCALE, accepted = 0, total = 0;
        for (int i = 0; i < schemas; i++) {
            Map<String, Object> root = new LinkedHashMap<>();
            Map<String, Object> defs = new LinkedHashMap<>();
            defs.put("d0", schema(r, 1, null));
            Map<String, Object> top = asMap(schema(r, 3, defs));
            root.putAll(top);
            root.put("$defs", defs);
            String text = Json.write(root);
            ByteDfa dfa = Constraint.jsonSchema(text, ConstraintLimits.DEFAULT).dfa();
            for (int j = 0; j < 40; j++) {
                Object v = value(r, root, root, 3);
                String json = Json.write(v);
                boolean valid = valid(root, root, v);
                accepted += valid ? 1 : 0;
                total++;
                assertEquals(valid, dfa.matches(json.getBytes(StandardCharsets.UTF_8)), () -> "schema " + text + "\nvalue " + json);
            }
        }
        assertTrue(accepted > total / 10 && accepted < total * 9 / 10, "both kinds of candidates: " + accepted + " of " + total + " valid");
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> asMap(Object o) {
        return (Map<String, Object>) o;
    }

    static Object schema(Random r, int depth, Map<String, Object> defs) {
        Map<String, Object> s = new LinkedHashMap<>();
        int kind = r.nextInt(depth > 0 ? 12 : 7);
        switch (kind) {
            case 0 -> {
                s.put("type", "string");
                switch (r.nextInt(5)) {
                    case 0 -> { int lo = r.nextInt(3); s.put("minLength", (long) lo); s.put("maxLength", (long) (lo + r.nextInt(3))); }
                    case 1 -> s.put("pattern", PATTERNS.get(r.nextInt(PATTERNS.size())));
                    case 2 -> s.put("enum", List.of("a", "\"b\"", "é😀"));
                    case 3 -> s.put("maxLength", (long) r.nextInt(3));
                    default -> { }
                }
            }
            case 1 -> s.put("type", "integer");
            case 2 -> s.put("type", "number");
            case 3 -> s.put("type", "boolean");
            case 4 -> s.put("type", "null");
            case 5 -> s.put("const", List.of("x", 1L, true).get(r.nextInt(3)));
            case 6 -> s.put("enum", new ArrayList<>(List.of(1L, "one", false)));
            case 7 -> {
                s.put("type", "array");
                s.put("items", schema(r, depth - 1, defs));
                int lo = r.nextInt(2);
                s.put("minItems", (long) lo);
                s.put("maxItems", (long) (lo + r.nextInt(3)));
            }
            case 8, 9 -> {
                s.put("type", "object");
                Map<String, Object> props = new LinkedHashMap<>();
                List<String> required = new ArrayList<>();
                List<String> keys = new ArrayList<>(KEYS);
                java.util.Collections.shuffle(keys, r);
                int n = 1 + r.nextInt(3);
                for (int k = 0; k < n; k++) {
                    props.put(keys.get(k), schema(r, depth - 1, defs));
                    if (r.nextBoolean()) required.add(keys.get(k));
                }
                s.put("properties", props);
                s.put("required", required);
                s.put("additionalProperties", false);
            }
            case 10 -> s.put("anyOf", List.of(schema(r, depth - 1, defs), schema(r, depth - 1, defs)));
            default -> {
                if (defs == null) return schema(r, depth, null);
                s.put("$ref", "#/$defs/d0");
            }
        }
        if (r.nextInt(5) == 0) s.put("description", "ignored");
        return s;
    }

    static Map<String, Object> resolve(Map<String, Object> root, Map<String, Object> s) {
        return s.containsKey("$ref") ? asMap(asMap(root.get("$defs")).get("d0")) : s;
    }

    @SuppressWarnings("unchecked")
    static boolean valid(Map<String, Object> root, Map<String, Object> schema, Object v) {
        Map<String, Object> s = resolve(root, schema);
        if (s.containsKey("const")) return Json.write(s.get("const")).equals(Json.write(v));
        if (s.containsKey("enum")) return ((List<Object>) s.get("enum")).stream().anyMatch(e -> Json.write(e).equals(Json.write(v)));
        if (s.containsKey("anyOf")) return ((List<Object>) s.get("anyOf")).stream().anyMatch(o -> valid(root, asMap(o), v));
        switch ((String) s.get("type")) {
            case "string": {
                if (!(v instanceof String str)) return false;
                // at least minLength code points (JSON Schema) and at most maxLength UTF-16 units (zod; an
                // emoji counts 2): valid under both readings. The cap on astral characters below a long
                // minimum never applies at these lengths.
                if (s.containsKey("minLength") && str.codePointCount(0, str.length()) < (Long) s.get("minLength")) return false;
                if (s.containsKey("maxLength") && str.length() > (Long) s.get("maxLength")) return false;
                return !s.containsKey("pattern") || Pattern.compile((String) s.get("pattern")).matcher(str).find();
            }
            case "integer": return v instanceof Long;
            case "number": return v instanceof Long || v instanceof Double;
            case "boolean": return v instanceof Boolean;
            case "null": return v == null;
            case "array": {
                if (!(v instanceof List<?> l)) return false;
                if (l.size() < (Long) s.get("minItems") || l.size() > (Long) s.get("maxItems")) return false;
                return l.stream().allMatch(x -> valid(root, asMap(s.get("items")), x));
            }
            case "object": {
                if (!(v instanceof Map<?, ?> m)) return false;
                Map<String, Object> props = asMap(s.get("properties"));
                List<String> order = new ArrayList<>(props.keySet());
                int last = -1;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    int at = order.indexOf(e.getKey());
                    if (at <= last) return false;  // unknown, repeated, or out of the schema's order
                    last = at;
                    if (!valid(root, asMap(props.get(e.getKey())), e.getValue())) return false;
                }
                return ((List<String>) s.get("required")).stream().allMatch(m::containsKey);
            }
            default: throw new IllegalStateException();
        }
    }

    /** A candidate: usually shaped by the schema (often valid), sometimes anything. */
    @SuppressWarnings("unchecked")
    static Object value(Random r, Map<String, Object> root, Map<String, Object> schema, int depth) {
        Map<String, Object> s = resolve(root, schema);
        if (r.nextInt(8) == 0 || depth == 0) return anything(r, depth);
        if (s.containsKey("const")) return s.get("const");
        if (s.containsKey("enum")) { List<Object> e = (List<Object>) s.get("enum"); return e.get(r.nextInt(e.size())); }
        if (s.containsKey("anyOf")) { List<Object> o = (List<Object>) s.get("anyOf"); return value(r, root, asMap(o.get(r.nextInt(o.size()))), depth); }
        switch ((String) s.get("type")) {
            case "array": {
                List<Object> l = new ArrayList<>();
                int n = r.nextInt(4);
                for (int i = 0; i < n; i++) l.add(value(r, root, asMap(s.get("items")), depth - 1));
                return l;
            }
            case "object": {
                Map<String, Object> m = new LinkedHashMap<>();
                Map<String, Object> props = asMap(s.get("properties"));
                List<String> required = (List<String>) s.get("required");
                for (Map.Entry<String, Object> p : props.entrySet())
                    if (required.contains(p.getKey()) ? r.nextInt(10) != 0 : r.nextBoolean()) m.put(p.getKey(), value(r, root, asMap(p.getValue()), depth - 1));
                if (r.nextInt(10) == 0) m.put(KEYS.get(r.nextInt(KEYS.size())), 1L);  // extra, repeated or out of order
                return m;
            }
            default: return anything(r, 0);
        }
    }

    static Object anything(Random r, int depth) {
        switch (r.nextInt(depth > 0 ? 8 : 6)) {
            case 0: {
                StringBuilder b = new StringBuilder();
                int n = r.nextInt(5);
                for (int i = 0; i < n; i++) b.append(CHARS.get(r.nextInt(CHARS.size())));
                return b.toString();
            }
            case 1: return List.of(0L, -7L, 123456789012345678L, Long.MIN_VALUE, 1L).get(r.nextInt(5));
            case 2: return List.of(0.5, -1.25e-7, 3.0e200, 12345.678).get(r.nextInt(4));
            case 3: return r.nextBoolean();
            case 4: return null;
            case 5: return List.of("a", "\"b\"", "é😀", "x", "one").get(r.nextInt(5));
            case 6: { List<Object> l = new ArrayList<>(); l.add(anything(r, depth - 1)); return l; }
            default: {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put(KEYS.get(r.nextInt(KEYS.size())), anything(r, depth - 1));
                return m;
            }
        }
    }
}
