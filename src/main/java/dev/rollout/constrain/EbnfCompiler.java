package dev.rollout.constrain;

import dev.rollout.constrain.EbnfGrammar.Expr;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * An EBNF/GBNF grammar ({@link EbnfParser}) as the minimal byte DFA of the texts its rule
 * {@code root} derives. Our automata are finite, so only regular languages compile exactly; a
 * context-free grammar's recursion is handled in three ways (ADR 0029, addendum on grammars):
 * <ul>
 *   <li>A rule without recursion is its body, compiled once and shared by every reference.</li>
 *   <li>Direct left and right recursion at the top of a rule is repetition, and is rewritten as
 *       such, exactly: {@code a ::= a x | y z a | w} is {@code a ::= (y z)* w x*}. This is how
 *       grammars spell lists ({@code list ::= item | list "," item}) and strings
 *       ({@code chars ::= "" | [a-z] chars}), which must not be bounded.</li>
 *   <li>Any other recursion (nesting: {@code value ::= "[" value "]" | ...}, mutual recursion) is
 *       expanded to {@link ConstraintLimits#maxGrammarDepth()} levels: a reference back into a
 *       rule that is being expanded (a back edge of the depth-first search from {@code root})
 *       takes one level, and at the last level such references match nothing, so only the
 *       alternatives without them remain. Each rule at each level is determinized and minimized
 *       once, then used as a compiled part ({@link Rx.Compiled}) wherever it is referenced, so the
 *       automaton grows with the language's states, not with the grammar's tree of copies.</li>
 * </ul>
 * Every step counts against the grammar's one time limit and the state limits; a refusal names
 * the rule it was compiling, and for a recursive rule how deep it had got.
 */
public final class EbnfCompiler {
    /** Expansions estimated larger than this are compiled to minimal DFAs before they are reused. */
    static final int SHRINK_ABOVE = 64;
    /**
     * An expansion nested deeper than this is compiled whether or not it is reused: a chain of
     * thousands of rules would otherwise be one tree as deep, and the automaton builder recurses.
     */
    static final int MAX_INLINE_DEPTH = 64;
    private final Map<String, EbnfGrammar.Rule> rules;
    private final Map<String, Expr> bodies = new HashMap<>();
    private final ConstraintLimits limits;
    private final int depth;
    private final long deadline;
    /** Each reachable rule's strongly connected component. */
    private final Map<String, Integer> component = new HashMap<>();
    private final Set<String> recursive = new HashSet<>();
    /** Back edges of the depth-first search from root: "from\0to". */
    private final Set<String> back = new HashSet<>();
    /** A rule's expansion at each level ([0] for a rule without recursion); null: it matches nothing. */
    private final Map<String, Rx[]> expansions = new HashMap<>();
    /** How often each rule is referenced (twice inside a repetition): a rule used once is not worth compiling alone. */
    private final Map<String, Integer> uses = new HashMap<>();
    private final Map<Rx, Integer> rxDepth = new java.util.IdentityHashMap<>();
    /** Rules whose every alternative starts or ends with the rule itself. */
    private final Set<String> neverEnds = new HashSet<>();

    private EbnfCompiler(EbnfGrammar g, ConstraintLimits limits) {
        this.rules = g.rules();
        this.limits = limits;
        this.depth = limits.maxGrammarDepth();
        // the compiling thread's CPU time, the clock AutomatonBuilder counts (a loaded machine must not refuse)
        this.deadline = AutomatonBuilder.cpuNanos() + limits.maxMillis() * 1_000_000L;
    }

    public static ByteDfa compile(String grammar, ConstraintLimits limits) {
        return new EbnfCompiler(EbnfParser.parse(grammar, limits), limits).compile();
    }

    private ByteDfa compile() {
        EbnfGrammar.Rule root = rules.get("root");
        if (root == null) throw new ConstraintException("ebnf: the grammar has no rule 'root' (the rule the whole output must match)");
        for (EbnfGrammar.Rule r : rules.values()) checkReferences(r.body(), r.name());
        for (EbnfGrammar.Rule r : rules.values()) bodies.put(r.name(), unrollDirectRecursion(r));
        List<String> postorder = search();
        components(postorder);
        for (String r : postorder) countUses(bodies.get(r), false);
        // callees first: a rule's references, except along back edges, were finished before it
        Map<Integer, Integer> left = new HashMap<>();
        for (String r : postorder) left.merge(component.get(r), 1, Integer::sum);
        Map<Integer, List<String>> members = new HashMap<>();
        for (String r : postorder) {
            if (!recursive.contains(r)) {
                expansions.put(r, new Rx[] {expand(r, 0)});
                continue;
            }
            int c = component.get(r);
            members.computeIfAbsent(c, k -> new ArrayList<>()).add(r);
            if (left.merge(c, -1, Integer::sum) > 0) continue;
            // the whole component, level by level: level n refers back to level n - 1 only
            for (String m : members.get(c)) expansions.put(m, new Rx[depth + 1]);
            for (int level = 0; level <= depth; level++)
                for (String m : members.get(c)) expansions.get(m)[level] = expand(m, level);
        }
        Rx top = top("root");
        if (top == null) {
            String endless = postorder.stream().filter(neverEnds::contains).findFirst().orElse(null);
            if (endless != null)
                throw new ConstraintException("ebnf: the grammar matches no text: the rule '" + endless + "' never ends (each of its alternatives "
                        + "starts or ends with '" + endless + "' itself), at line " + rules.get(endless).line() + ", column "
                        + rules.get(endless).column());
            if (recursive.isEmpty()) throw new ConstraintException("ebnf: the grammar matches no text at all");
            List<String> names = recursive.stream().sorted().limit(5).toList();
            throw new ConstraintException("ebnf: the grammar matches no text: its recursion (rule" + (names.size() > 1 ? "s " : " ")
                    + String.join(", ", names.stream().map(n -> "'" + n + "'").toList()) + ") never ends within " + depth
                    + " levels, the limit of nesting");
        }
        if (top instanceof Rx.Compiled c) return c.dfa();
        return compile(top, "root", recursive.contains("root") ? depth : -1);
    }

    /** A rule as referenced from outside its component: at the top level. */
    private Rx top(String rule) {
        Rx[] e = expansions.get(rule);
        return e[e.length - 1];
    }

    private void checkReferences(Expr e, String in) {
        if (e instanceof EbnfGrammar.Ref r) {
            if (!rules.containsKey(r.name()))
                throw new ConstraintException("ebnf: the rule '" + r.name() + "' is not defined, at line " + r.line() + ", column " + r.column()
                        + " (rule '" + in + "')");
        } else if (e instanceof EbnfGrammar.Seq s) {
            for (Expr p : s.parts()) checkReferences(p, in);
        } else if (e instanceof EbnfGrammar.Alt a) {
            for (Expr o : a.options()) checkReferences(o, in);
        } else if (e instanceof EbnfGrammar.Repeat r) {
            checkReferences(r.body(), in);
        }
    }

    /**
     * {@code a ::= a x1 | ... | y1 a | ... | w1 | ...} as {@code (y1 | ...)* (w1 | ...) (x1 | ...)*}:
     * the same language (each derivation prepends y's and appends x's around one w), with no
     * recursion left at the ends. An alternative that is {@code a} alone adds nothing and goes.
     */
    private Expr unrollDirectRecursion(EbnfGrammar.Rule r) {
        List<Expr> options = r.body() instanceof EbnfGrammar.Alt a ? a.options() : List.of(r.body());
        List<Expr> lefts = new ArrayList<>(), rights = new ArrayList<>(), base = new ArrayList<>();
        for (Expr o : options) {
            List<Expr> parts = o instanceof EbnfGrammar.Seq s ? s.parts() : List.of(o);
            int n = parts.size();
            boolean first = n > 0 && isRef(parts.get(0), r.name()), last = n > 0 && isRef(parts.get(n - 1), r.name());
            if (n == 1 && first) continue;
            if (first) lefts.add(new EbnfGrammar.Seq(parts.subList(1, n)));
            else if (last) rights.add(new EbnfGrammar.Seq(parts.subList(0, n - 1)));
            else base.add(o);
        }
        if (base.size() == options.size()) return r.body();
        if (base.isEmpty()) {
            // no derivation ends: the rule matches nothing (refused below if the grammar needs it)
            neverEnds.add(r.name());
            return new EbnfGrammar.Chars(CodePointSet.EMPTY);
        }
        List<Expr> parts = new ArrayList<>();
        if (!rights.isEmpty()) parts.add(new EbnfGrammar.Repeat(alt(rights), 0, -1));
        parts.add(alt(base));
        if (!lefts.isEmpty()) parts.add(new EbnfGrammar.Repeat(alt(lefts), 0, -1));
        return new EbnfGrammar.Seq(parts);
    }

    private static Expr alt(List<Expr> options) {
        return options.size() == 1 ? options.get(0) : new EbnfGrammar.Alt(options);
    }

    private static boolean isRef(Expr e, String name) {
        return e instanceof EbnfGrammar.Ref r && r.name().equals(name);
    }

    /** The rules a body refers to, each once, in order. */
    private Set<String> references(String rule) {
        Set<String> out = new LinkedHashSet<>();
        collect(bodies.get(rule), out);
        return out;
    }

    private static void collect(Expr e, Set<String> out) {
        if (e instanceof EbnfGrammar.Ref r) out.add(r.name());
        else if (e instanceof EbnfGrammar.Seq s) s.parts().forEach(p -> collect(p, out));
        else if (e instanceof EbnfGrammar.Alt a) a.options().forEach(o -> collect(o, out));
        else if (e instanceof EbnfGrammar.Repeat r) collect(r.body(), out);
    }

    /**
     * Depth-first search from root, without recursion (a grammar may chain thousands of rules):
     * the reachable rules in postorder, and the back edges (to a rule still on the path) in {@link #back}.
     */
    private List<String> search() {
        List<String> post = new ArrayList<>();
        Map<String, Integer> state = new HashMap<>();  // 1 on the path, 2 finished
        Deque<String> path = new ArrayDeque<>();
        Deque<Iterator<String>> next = new ArrayDeque<>();
        path.push("root");
        next.push(references("root").iterator());
        state.put("root", 1);
        while (!path.isEmpty()) {
            if (AutomatonBuilder.cpuNanos() > deadline) throw new ConstraintException("ebnf: " + timeUp());
            String u = path.peek();
            Iterator<String> it = next.peek();
            if (it.hasNext()) {
                String w = it.next();
                Integer s = state.get(w);
                if (s == null) {
                    state.put(w, 1);
                    path.push(w);
                    next.push(references(w).iterator());
                } else if (s == 1) {
                    back.add(u + '\0' + w);
                    recursive.add(w);
                }
            } else {
                state.put(u, 2);
                post.add(u);
                path.pop();
                next.pop();
            }
        }
        return post;
    }

    private void countUses(Expr e, boolean repeated) {
        if (e instanceof EbnfGrammar.Ref r) uses.merge(r.name(), repeated ? 2 : 1, Integer::sum);
        else if (e instanceof EbnfGrammar.Seq s) s.parts().forEach(p -> countUses(p, repeated));
        else if (e instanceof EbnfGrammar.Alt a) a.options().forEach(o -> countUses(o, repeated));
        else if (e instanceof EbnfGrammar.Repeat r) countUses(r.body(), repeated || r.max() != 1);
    }

    /** Strongly connected components (Kosaraju's second pass, over the reversed edges). */
    private void components(List<String> postorder) {
        Map<String, List<String>> callers = new HashMap<>();
        for (String u : postorder) for (String w : references(u)) callers.computeIfAbsent(w, k -> new ArrayList<>()).add(u);
        int id = 0;
        for (int i = postorder.size() - 1; i >= 0; i--) {
            String start = postorder.get(i);
            if (component.containsKey(start)) continue;
            Deque<String> stack = new ArrayDeque<>(List.of(start));
            component.put(start, id);
            List<String> members = new ArrayList<>();
            while (!stack.isEmpty()) {
                String u = stack.pop();
                members.add(u);
                for (String c : callers.getOrDefault(u, List.of()))
                    if (!component.containsKey(c)) {
                        component.put(c, id);
                        stack.push(c);
                    }
            }
            // a component of several rules is recursive; one rule is if it refers to itself (found in search)
            if (members.size() > 1) recursive.addAll(members);
            id++;
        }
    }

    /**
     * A rule at a level, as an Rx (null: it matches nothing). Compiled to a minimal DFA where it
     * is large and used more than once (each use would copy it) or nested deep.
     */
    private Rx expand(String rule, int level) {
        if (AutomatonBuilder.cpuNanos() > deadline) throw new ConstraintException("ebnf: " + where(rule, level) + ": " + timeUp());
        Rx rx = translate(bodies.get(rule), rule, level);
        if (rx == null || rx instanceof Rx.Compiled) return rx;
        // a rule used once is part of its one user's automaton: compiling it alone would only add
        // a determinization (a recursive rule is used once a level: inlined, each level holds one copy of the one below)
        boolean reused = uses.getOrDefault(rule, 0) > 1;
        if (!(reused && AutomatonBuilder.estimate(rx) > SHRINK_ABOVE) && depth(rx) <= MAX_INLINE_DEPTH) return rx;
        return new Rx.Compiled(compile(rx, rule, level));
    }

    /** How deep an Rx nests (its parts are earlier expansions, measured once each). */
    private int depth(Rx rx) {
        Integer d = rxDepth.get(rx);
        if (d != null) return d;
        int inner = 0;
        if (rx instanceof Rx.Seq s) for (Rx p : s.parts()) inner = Math.max(inner, depth(p));
        else if (rx instanceof Rx.Alt a) for (Rx o : a.options()) inner = Math.max(inner, depth(o));
        else if (rx instanceof Rx.Repeat r) inner = depth(r.body());
        rxDepth.put(rx, inner + 1);
        return inner + 1;
    }

    /** What a refusal names: the rule, and for a recursive one how deep it had got. */
    private String where(String rule, int level) {
        return !recursive.contains(rule) ? "rule '" + rule + "'"
                : "the recursive rule '" + rule + "', expanded " + level + " of at most " + depth + " levels deep (the limit of nesting)";
    }

    private ByteDfa compile(Rx rx, String rule, int level) {
        long left = (deadline - AutomatonBuilder.cpuNanos()) / 1_000_000L;
        if (left <= 0) throw new ConstraintException("ebnf: " + where(rule, level) + ": " + timeUp());
        // Parts that are minimal DFAs already determinize to about their own size, but building and
        // determinizing cost ~10-50 µs per state on a loaded machine: past twice the DFA limit the
        // time limit would be overrun inside one dk.brics operation, before the state limit spoke.
        ConstraintLimits part = new ConstraintLimits(limits.maxPatternChars(), limits.maxRepeat(),
                (int) Math.min(limits.maxNfaStates(), 2L * limits.maxDfaStates()), limits.maxDfaStates(), Math.max(1, left),
                limits.maxRefDepth(), limits.maxGrammarDepth());
        try {
            return AutomatonBuilder.compile(rx, part);
        } catch (ConstraintException e) {
            // the builder counts its own time from what was left; the client's limit is the grammar's
            String why = e.getMessage().replace("took more than " + left + " ms", "took more than " + limits.maxMillis() + " ms");
            throw new ConstraintException("ebnf: " + where(rule, level) + ": " + why);
        }
    }

    private String timeUp() {
        return "the grammar took more than " + limits.maxMillis() + " ms to compile";
    }

    /** An expression of {@code owner}'s body at {@code level}, with references resolved; null where it matches nothing. */
    private Rx translate(Expr e, String owner, int level) {
        if (e instanceof EbnfGrammar.Text t) return Rx.literal(t.text());
        if (e instanceof EbnfGrammar.Chars c) return c.set().isEmpty() ? null : Rx.chars(c.set());
        if (e instanceof EbnfGrammar.Ref r) {
            String to = r.name();
            if (!recursive.contains(owner) || !component.get(owner).equals(component.get(to))) return top(to);
            if (!back.contains(owner + '\0' + to)) return expansions.get(to)[level];
            return level == 0 ? null : expansions.get(to)[level - 1];
        }
        if (e instanceof EbnfGrammar.Seq s) {
            List<Rx> parts = new ArrayList<>();
            for (Expr p : s.parts()) {
                Rx x = translate(p, owner, level);
                if (x == null) return null;
                parts.add(x);
            }
            return parts.size() == 1 ? parts.get(0) : new Rx.Seq(parts);
        }
        if (e instanceof EbnfGrammar.Alt a) {
            List<Rx> options = new ArrayList<>();
            for (Expr o : a.options()) {
                Rx x = translate(o, owner, level);
                if (x != null) options.add(x);
            }
            return options.isEmpty() ? null : Rx.alt(options);
        }
        EbnfGrammar.Repeat r = (EbnfGrammar.Repeat) e;
        Rx body = translate(r.body(), owner, level);
        if (body == null) return r.min() == 0 ? Rx.EMPTY : null;
        return new Rx.Repeat(body, r.min(), r.max());
    }
}
