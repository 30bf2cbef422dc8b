package dev.rollout.constrain;

import dk.brics.automaton.Automaton;
import dk.brics.automaton.State;
import dk.brics.automaton.Transition;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * An {@link Rx} compiled to a minimal DFA over UTF-8 bytes. dk.brics.automaton holds the automata
 * and does Thompson-style union, concatenation and repetition; its
 * characters here are bytes (0–255). Determinizing is ours, because it is the step that can blow
 * up exponentially and dk.brics's cannot be bounded: ours counts states and time and gives up
 * with a {@link ConstraintException} naming the limit. Minimizing is ours too, on flat tables.
 */
public final class AutomatonBuilder {
    /** Sub-automata larger than this are minimized as they are built, so that copies of them stay small. */
    private static final int SHRINK_ABOVE = 32;
    private final ConstraintLimits limits;
    private final long deadline;
    private final Map<Rx, Automaton> built = new IdentityHashMap<>();
    private final Map<Rx, Integer> uses = new IdentityHashMap<>();

    private AutomatonBuilder(ConstraintLimits limits, long deadline) {
        this.limits = limits;
        this.deadline = deadline;
    }

    private static final java.lang.management.ThreadMXBean THREADS = java.lang.management.ManagementFactory.getThreadMXBean();

    /**
     * The compiling thread's CPU time, what the time limit counts: on a loaded machine (a cold JIT
     * beside a busy engine, two cores) wall time ran a 688-state schema past 2 s that takes 0.3 s
     * of work, and the refusal is cached. Wall time where the JVM cannot tell a thread's CPU time.
     */
    static long cpuNanos() {
        return THREADS.isCurrentThreadCpuTimeSupported() ? THREADS.getCurrentThreadCpuTime() : System.nanoTime();
    }

    public static ByteDfa compile(Rx rx, ConstraintLimits limits) {
        return compile(rx, limits, cpuNanos() + limits.maxMillis() * 1_000_000L);
    }

    /** As {@link #compile(Rx, ConstraintLimits)}, by a deadline already running (a structural tag's free text counts too). */
    static ByteDfa compile(Rx rx, ConstraintLimits limits, long deadline) {
        long estimate = estimate(rx);
        if (estimate > limits.maxNfaStates())
            throw new ConstraintException("the constraint expands to about " + (estimate >= Long.MAX_VALUE / 4 ? "unboundedly many" : estimate)
                    + " automaton states before determinizing, more than the limit of " + limits.maxNfaStates()
                    + " (large repetition bounds multiply their bodies)");
        AutomatonBuilder b = new AutomatonBuilder(limits, deadline);
        b.count(rx);
        return determinize(b.build(rx), limits, b.deadline);
    }

    /** An upper bound on the states {@link #build} makes, computed before building anything. */
    static long estimate(Rx rx) {
        if (rx instanceof Rx.Chars c) return 2 + 4L * c.set().ranges().length;
        if (rx instanceof Rx.Compiled c) return c.dfa().states();
        if (rx instanceof Rx.StringChars c) {
            long counts = counts(c.minCodePoints(), c.maxUtf16Units(), astralCap(c.minCodePoints(), c.maxUtf16Units()));
            return 1 + counts * estimate(c.chars());
        }
        if (rx instanceof Rx.Seq s) return s.parts().stream().mapToLong(AutomatonBuilder::estimate).reduce(1, AutomatonBuilder::sat);
        if (rx instanceof Rx.Alt a) return a.options().stream().mapToLong(AutomatonBuilder::estimate).reduce(1, AutomatonBuilder::sat);
        Rx.Repeat r = (Rx.Repeat) rx;
        long copies = r.max() < 0 ? r.min() + 1L : Math.max(1, r.max());
        long body = estimate(r.body());
        return body > Long.MAX_VALUE / 4 / copies ? Long.MAX_VALUE / 4 : 1 + body * copies;
    }

    private static long sat(long a, long b) {
        return Math.min(Long.MAX_VALUE / 4, a + b);
    }

    /**
     * The automaton of a subexpression. A part used twice (the same Rx object: a schema's value
     * type in every array and object) is built once and cloned, and the body of a repetition is
     * minimized before it is copied, which keeps the whole small before the final determinization.
     */
    private Automaton build(Rx rx) {
        // building is bounded by the state estimate, not the clock: a grammar's compiled parts make
        // large automata quickly, so the deadline is checked between operations too
        if (cpuNanos() > deadline)
            throw new ConstraintException("the constraint took more than " + limits.maxMillis() + " ms to compile (building its automaton)");
        if (uses.get(rx) == 1) return construct(rx);  // used once: no copy to keep
        Automaton a = built.get(rx);
        if (a == null) {
            a = construct(rx);
            built.put(rx, a);
        }
        return a.clone();
    }

    /** How often each node of the tree (a DAG: parts are shared) is used. */
    private void count(Rx rx) {
        if (uses.merge(rx, 1, Integer::sum) > 1) return;
        if (rx instanceof Rx.Seq s) s.parts().forEach(this::count);
        else if (rx instanceof Rx.Alt a) a.options().forEach(this::count);
        else if (rx instanceof Rx.Repeat r) count(r.body());
    }

    private Automaton minimal(Automaton nfa) {
        return toAutomaton(determinize(nfa, limits, deadline));
    }

    private Automaton construct(Rx rx) {
        if (rx instanceof Rx.Chars c) return chars(c);
        if (rx instanceof Rx.Compiled c) return toAutomaton(c.dfa());
        if (rx instanceof Rx.StringChars c) return stringChars(c);
        if (rx instanceof Rx.Seq s) {
            if (s.parts().isEmpty()) return Automaton.makeEmptyString();
            List<Automaton> parts = new ArrayList<>();
            for (Rx p : s.parts()) parts.add(build(p));
            return parts.size() == 1 ? parts.get(0) : Automaton.concatenate(parts);
        }
        if (rx instanceof Rx.Alt a) {
            List<Automaton> options = new ArrayList<>();
            for (Rx o : a.options()) options.add(build(o));
            return Automaton.union(options);
        }
        Rx.Repeat r = (Rx.Repeat) rx;
        Automaton body = build(r.body());
        if (r.max() != 1 && body.getNumberOfStates() > SHRINK_ABOVE) body = minimal(body);  // before it is copied
        return r.max() < 0 ? body.repeat(r.min()) : repeat(body, r.min(), r.max());
    }

    /**
     * {@code body{min,max}} in linear time: min copies, then max − min copies chained so that each
     * may end the text (x(x(x)?)?)?. dk.brics's {@code repeat(min, max)} is quadratic (each copy's
     * accepting states are searched through all the copies linked after it): {@code [^"]{0,5000}}
     * took seconds.
     */
    private static Automaton repeat(Automaton body, int min, int max) {
        List<Automaton> parts = new ArrayList<>();
        for (int i = 0; i < min; i++) parts.add(body.clone());
        int optional = max - min;
        if (optional > 0) {
            body = freshStart(body);
            List<Automaton> copies = new ArrayList<>();
            List<java.util.Set<State>> accepting = new ArrayList<>();
            for (int i = 0; i < optional; i++) {
                Automaton c = body.clone();
                c.expandSingleton();
                copies.add(c);
                accepting.add(c.getAcceptStates());  // before linking: only this copy's own states
            }
            for (Automaton c : copies) c.getInitialState().setAccept(true);
            for (int i = optional - 2; i >= 0; i--)
                for (State a : accepting.get(i)) {
                    // an epsilon move, as dk.brics makes one: the target's transitions, copied
                    State next = copies.get(i + 1).getInitialState();
                    for (Transition t : next.getTransitions()) a.addTransition(new Transition(t.getMin(), t.getMax(), t.getDest()));
                }
            Automaton chain = copies.get(0);
            chain.setDeterministic(false);
            parts.add(chain);
        }
        if (parts.isEmpty()) return Automaton.makeEmptyString();
        return parts.size() == 1 ? parts.get(0) : Automaton.concatenate(parts);
    }

    /**
     * The automaton with a start state that no transition enters. {@link #repeat} makes each optional
     * copy's start accepting (the copy may be skipped); where the text can come back to the start
     * (a minimized body such as {@code (ba)*c...}), that would accept it part-way through a copy.
     */
    private static Automaton freshStart(Automaton a) {
        a.expandSingleton();
        State old = a.getInitialState();
        boolean entered = false;
        for (State s : a.getStates())
            for (Transition t : s.getTransitions()) entered |= t.getDest() == old;
        if (!entered) return a;
        Automaton c = a.clone();
        State start = new State();
        State copied = c.getInitialState();
        start.setAccept(copied.isAccept());
        for (Transition t : copied.getTransitions()) start.addTransition(new Transition(t.getMin(), t.getMax(), t.getDest()));
        c.setInitialState(start);
        return c;
    }

    /** Characters of the Basic Multilingual Plane: one UTF-16 unit each; the rest take two (a surrogate pair). */
    private static final CodePointSet BMP = CodePointSet.range(0, 0xFFFF);

    /**
     * {@link Rx.StringChars}: a counter whose states are (UTF-16 units written, characters written,
     * the latter only until the minimum is reached), each joined to the next by a copy of the
     * minimal automaton of one BMP character (one unit further) or of one astral character (two).
     * A repetition cannot say this: its copies count characters, one each.
     *
     * <p>Below the minimum, the states are pairs, so their number grows with the minimum's square;
     * {@link #astralCap} bounds how many astral characters may come before the minimum is reached,
     * which keeps them about as many as the units' own. Exact for the bounds schemas use (a
     * minimum up to 22, or larger with room in the maximum); past that, a string that opens with
     * more astral characters than the cap is not written (it stays valid under both readings).
     */
    private Automaton stringChars(Rx.StringChars sc) {
        int min = sc.minCodePoints(), max = sc.maxUtf16Units(), cap = astralCap(min, max);
        ByteDfa one = oneChar(sc.chars().set().intersect(BMP), sc.chars().jsonEscaped());
        ByteDfa two = oneChar(sc.chars().set().minus(BMP), sc.chars().jsonEscaped());
        Map<Long, State> states = new HashMap<>();
        java.util.ArrayDeque<long[]> queue = new java.util.ArrayDeque<>();
        State start = counter(states, queue, 0, 0, min);
        while (!queue.isEmpty()) {
            if ((states.size() & 1023) == 0 && cpuNanos() > deadline)
                throw new ConstraintException("the constraint took more than " + limits.maxMillis() + " ms to compile (building its automaton)");
            long[] uc = queue.poll();
            int units = (int) uc[0], chars = (int) uc[1];
            State from = states.get(uc[0] * (min + 1) + chars);
            from.setAccept(chars >= min);
            int next = Math.min(chars + 1, min);
            if (one != null && units + 1 <= max) link(from, one, counter(states, queue, units + 1, next, min));
            // below the minimum the astral characters so far are units - chars
            if (two != null && units + 2 <= max && (next >= min || units - chars + 1 <= cap))
                link(from, two, counter(states, queue, units + 2, next, min));
        }
        Automaton a = new Automaton();
        a.setInitialState(start);
        a.setDeterministic(false);
        return a;
    }

    /** The counter's state (units, characters up to the minimum), queued when new. */
    private static State counter(Map<Long, State> states, java.util.ArrayDeque<long[]> queue, int units, int chars, int min) {
        return states.computeIfAbsent((long) units * (min + 1) + chars, k -> {
            queue.add(new long[] {units, chars});
            return new State();
        });
    }

    /** The minimal automaton of one character of the set, or null for none. */
    private ByteDfa oneChar(CodePointSet set, boolean jsonEscaped) {
        return set.isEmpty() ? null : determinize(chars(new Rx.Chars(set, jsonEscaped)), limits, deadline);
    }

    /**
     * A copy of a one-character automaton from {@code from} to {@code to}: its start is
     * {@code from}, its accepting state {@code to}. A character's encodings are prefix-free, so the
     * accepting state is final and nothing returns to the start.
     */
    private static void link(State from, ByteDfa c, State to) {
        State[] copy = new State[c.states()];
        for (int s = 0; s < copy.length; s++) {
            if (c.accept()[s] && !c.isFinal(s)) throw new IllegalStateException("a character's automaton goes on after it accepts");
            copy[s] = s == ByteDfa.START ? from : c.accept()[s] ? to : new State();
        }
        for (int s = 0; s < copy.length; s++)
            for (int lo = 0; lo < 256; ) {
                int hi = classEnd(c, lo), t = c.next()[s * c.classes() + (c.classOf()[lo] & 0xFF)];
                if (t != ByteDfa.DEAD) copy[s].addTransition(new Transition((char) lo, (char) hi, copy[t]));
                lo = hi + 1;
            }
    }

    /**
     * How many astral characters may come before a string reaches its minimum
     * ({@link #stringChars}): all of them (the minimum − 1) while the pairs of the states below the
     * minimum number at most as many as the maximum's units, or 256; fewer past that.
     */
    static int astralCap(int min, int maxUnits) {
        long budget = Math.max(maxUnits + 1L, 256);
        int cap = Math.max(0, min - 1);
        while (cap > 0 && counts(min, 0, cap) > budget) cap--;
        return cap;
    }

    /**
     * The counter's states below the minimum (characters 0 to min − 1, each with 0 to
     * min(characters, cap) astral ones), and the maximum's units above it: an upper bound.
     */
    static long counts(int min, int maxUnits, int cap) {
        long below = 0;
        for (int c = 0; c < min; c++) below += Math.min(c, cap) + 1;
        return below + maxUnits + 1L;
    }

    /** A set of characters as the union of its UTF-8 byte sequences (and, inside JSON strings, escapes). */
    private static Automaton chars(Rx.Chars c) {
        CodePointSet set = c.set();
        List<int[]> seqs = new ArrayList<>();
        if (c.jsonEscaped()) {
            CodePointSet specials = CodePointSet.ofRanges(0, 0x1F, '"', '"', '\\', '\\');
            int[] r = set.intersect(specials).ranges();
            for (int i = 0; i < r.length; i += 2) {
                for (int cp = r[i]; cp <= r[i + 1]; cp++) {
                    byte[] esc = JsonLiteral.escape(cp).getBytes(java.nio.charset.StandardCharsets.US_ASCII);
                    int[] seq = new int[esc.length * 2];
                    for (int k = 0; k < esc.length; k++) seq[2 * k] = seq[2 * k + 1] = esc[k];
                    seqs.add(seq);
                }
            }
            set = set.minus(specials);
        }
        seqs.addAll(Utf8.sequences(set));
        Automaton a = new Automaton();
        State start = new State();
        State end = new State();
        end.setAccept(true);
        for (int[] seq : seqs) {
            State at = start;
            for (int k = 0; k < seq.length; k += 2) {
                State to = k + 2 == seq.length ? end : new State();
                at.addTransition(new Transition((char) seq[k], (char) seq[k + 1], to));
                at = to;
            }
        }
        a.setInitialState(start);
        a.setDeterministic(false);
        return a;
    }

    /**
     * The subset construction, bounded by {@link ConstraintLimits#maxDfaStates()} and the
     * deadline, straight into flat tables over the NFA's byte classes; then trimmed to the live
     * states and minimized ({@link #minimize}).
     */
    static ByteDfa determinize(Automaton nfa, ConstraintLimits limits, long deadline) {
        nfa.expandSingleton();
        Map<State, Integer> index = new IdentityHashMap<>();
        List<State> nfaStates = new ArrayList<>(nfa.getStates());
        nfaStates.remove(nfa.getInitialState());
        nfaStates.add(0, nfa.getInitialState());
        for (State s : nfaStates) index.put(s, index.size());
        int n = nfaStates.size();
        int[][] tMin = new int[n][], tMax = new int[n][], tTo = new int[n][];
        boolean[] nfaAccept = new boolean[n];
        boolean[] bound = new boolean[257];
        bound[0] = bound[256] = true;
        for (int i = 0; i < n; i++) {
            State s = nfaStates.get(i);
            nfaAccept[i] = s.isAccept();
            int k = s.getTransitions().size(), j = 0;
            tMin[i] = new int[k];
            tMax[i] = new int[k];
            tTo[i] = new int[k];
            for (Transition t : s.getTransitions()) {
                if (t.getMax() > 255) throw new IllegalStateException("not a byte automaton: " + t);
                tMin[i][j] = t.getMin();
                tMax[i][j] = t.getMax();
                bound[t.getMin()] = bound[t.getMax() + 1] = true;
                tTo[i][j++] = index.get(t.getDest());
            }
        }
        // byte classes: bytes that no transition tells apart
        byte[] classOf = new byte[256];
        int classes = 0;
        for (int b = 0; b < 256; b++) {
            if (bound[b]) classes++;
            classOf[b] = (byte) (classes - 1);
        }
        Map<SetKey, Integer> seen = new HashMap<>();
        List<int[]> work = new ArrayList<>();
        IntList next = new IntList();
        List<Boolean> accept = new ArrayList<>();
        SetKey first = new SetKey(new int[] {0});
        seen.put(first, 0);
        work.add(first.members);
        // each transition as the range of classes it covers (classes are contiguous byte ranges)
        int[][] cLo = new int[n][], cHi = new int[n][];
        for (int i = 0; i < n; i++) {
            cLo[i] = new int[tMin[i].length];
            cHi[i] = new int[tMin[i].length];
            for (int j = 0; j < tMin[i].length; j++) {
                cLo[i][j] = classOf[tMin[i][j]];
                cHi[i][j] = classOf[tMax[i][j]];
            }
        }
        java.util.BitSet[] to = new java.util.BitSet[classes];
        for (int c = 0; c < classes; c++) to[c] = new java.util.BitSet();
        for (int w = 0; w < work.size(); w++) {
            if ((w & 63) == 0 && cpuNanos() > deadline)
                throw new ConstraintException("the constraint took more than " + limits.maxMillis() + " ms to compile (" + seen.size() + " states so far)");
            int[] members = work.get(w);
            boolean acc = false;
            for (int m : members) {
                acc |= nfaAccept[m];
                for (int j = 0; j < cLo[m].length; j++)
                    for (int c = cLo[m][j]; c <= cHi[m][j]; c++) to[c].set(tTo[m][j]);
            }
            accept.add(acc);
            for (int c = 0; c < classes; c++) {
                if (to[c].isEmpty()) {
                    next.add(ByteDfa.DEAD);
                    continue;
                }
                SetKey key = new SetKey(to[c].stream().toArray());
                to[c].clear();
                Integer target = seen.get(key);
                if (target == null) {
                    if (seen.size() >= limits.maxDfaStates())
                        throw new ConstraintException("the constraint needs more than " + limits.maxDfaStates()
                                + " automaton states (a pattern like (a|b)*a(a|b){20} grows exponentially)");
                    target = seen.size();
                    seen.put(key, target);
                    work.add(key.members);
                }
                next.add(target);
            }
        }
        boolean[] acc = new boolean[accept.size()];
        for (int i = 0; i < acc.length; i++) acc[i] = accept.get(i);
        return minimize(classOf, classes, next.toArray(), acc, limits, deadline);
    }

    /**
     * Trims the states from which nothing is accepted, then merges equivalent states
     * ({@link Hopcroft}: dk.brics's works on its object graph over the whole char range and was
     * the slowest step). Renumbers breadth-first, the start 0.
     */
    static ByteDfa minimize(byte[] classOf, int k, int[] next, boolean[] accept, ConstraintLimits limits, long deadline) {
        int n = accept.length;
        // live states: reverse reachability from the accepting ones
        int[] predCount = new int[n + 1];
        for (int s = 0; s < n; s++) for (int c = 0; c < k; c++) if (next[s * k + c] >= 0) predCount[next[s * k + c] + 1]++;
        for (int i = 0; i < n; i++) predCount[i + 1] += predCount[i];
        int[] preds = new int[predCount[n]];
        int[] fill = predCount.clone();
        for (int s = 0; s < n; s++) for (int c = 0; c < k; c++) if (next[s * k + c] >= 0) preds[fill[next[s * k + c]]++] = s;
        boolean[] live = new boolean[n];
        int[] queue = new int[n];
        int qh = 0, qt = 0;
        for (int s = 0; s < n; s++) if (accept[s]) { live[s] = true; queue[qt++] = s; }
        while (qh < qt) {
            int s = queue[qh++];
            for (int i = predCount[s]; i < predCount[s + 1]; i++) if (!live[preds[i]]) { live[preds[i]] = true; queue[qt++] = preds[i]; }
        }
        if (!live[0]) throw new ConstraintException("the constraint matches no text at all");
        // merge equivalent states; the dead sink's block is never reached from a live state
        int[] hb = Hopcroft.blocks(n, k, next, accept, deadline, limits);
        int deadBlock = hb[n];
        int[] block = new int[n];
        int blocks = 0;
        for (int s = 0; s < n; s++) {
            block[s] = !live[s] || hb[s] == deadBlock ? -1 : hb[s];
            blocks = Math.max(blocks, hb[s] + 1);
        }
        blocks = Math.max(blocks, deadBlock + 1);
        // renumber blocks breadth-first from the start's
        int[] order = new int[blocks];
        java.util.Arrays.fill(order, -1);
        int[] rep = new int[blocks];
        int count = 0;
        qh = qt = 0;
        order[block[0]] = count++;
        rep[0] = 0;
        queue[qt++] = 0;
        while (qh < qt) {
            int s = queue[qh++];
            for (int c = 0; c < k; c++) {
                int t = next[s * k + c];
                if (t < 0 || block[t] < 0 || order[block[t]] >= 0) continue;
                order[block[t]] = count;
                rep[count++] = t;
                queue[qt++] = t;
            }
        }
        int[] out = new int[count * k];
        boolean[] outAccept = new boolean[count];
        for (int i = 0; i < count; i++) {
            int s = rep[i];
            outAccept[i] = accept[s];
            for (int c = 0; c < k; c++) {
                int t = next[s * k + c];
                out[i * k + c] = t < 0 || block[t] < 0 ? ByteDfa.DEAD : order[block[t]];
            }
        }
        return new ByteDfa(classOf, k, out, outAccept);
    }

    /** A table DFA back as a dk.brics automaton, to be combined further. */
    static Automaton toAutomaton(ByteDfa d) {
        State[] states = new State[d.states()];
        for (int s = 0; s < states.length; s++) {
            states[s] = new State();
            states[s].setAccept(d.accept()[s]);
        }
        for (int s = 0; s < states.length; s++) {
            for (int lo = 0; lo < 256; ) {
                int hi = classEnd(d, lo), t = d.next()[s * d.classes() + (d.classOf()[lo] & 0xFF)];
                if (t != ByteDfa.DEAD) states[s].addTransition(new Transition((char) lo, (char) hi, states[t]));
                lo = hi + 1;
            }
        }
        Automaton a = new Automaton();
        a.setInitialState(states[0]);
        a.setDeterministic(true);
        return a;
    }


    /** The last byte of the run of bytes from {@code lo} in one class (classes are contiguous byte ranges). */
    private static int classEnd(ByteDfa d, int lo) {
        int hi = lo;
        while (hi + 1 < 256 && d.classOf()[hi + 1] == d.classOf()[lo]) hi++;
        return hi;
    }

    private record SetKey(int[] members) {
        @Override
        public boolean equals(Object o) {
            return o instanceof SetKey k && Arrays.equals(members, k.members);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(members);
        }
    }
}
