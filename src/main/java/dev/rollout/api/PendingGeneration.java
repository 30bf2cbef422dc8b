package dev.rollout.api;

import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.RequestMatch;
import dev.rollout.engine.OutputText;
import dev.rollout.engine.Sequence;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.engine.SessionTurn;
import dev.rollout.tokenizer.HfTokenizer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

/**
 * The sequences of one HTTP call, submitted to the engine, and the queue their snapshots arrive
 * on. The HTTP thread waits on the queue, never on the engine.
 */
final class PendingGeneration {
    private final LinkedBlockingQueue<SequenceOutput> events = new LinkedBlockingQueue<>();
    private final List<Sequence> sequences = new ArrayList<>();
    private final List<GenerateRequest.Item> itemOf = new ArrayList<>();
    private final SequenceOutput[] finals;
    private final OutputText[] texts;  // per sequence: decoded here, not on the engine thread (null: no tokenizer, or the engine decodes)
    private final EngineLoop loop;
    private final RidsInFlight inFlight;
    private boolean claimed;
    private final SessionTurn sessionTurn;  // null outside sessions
    private int remaining;

    PendingGeneration(GenerateRequest req, EngineLoop loop, HfTokenizer tokenizer, RidsInFlight inFlight) {
        this(req, loop, tokenizer, inFlight, null);
    }

    /** @param sessionTurn the session the one sequence continues ({@code session_params}), or null */
    PendingGeneration(GenerateRequest req, EngineLoop loop, HfTokenizer tokenizer, RidsInFlight inFlight, SessionTurn sessionTurn) {
        this.loop = loop;
        this.inFlight = inFlight;
        this.sessionTurn = sessionTurn;
        int index = 0;
        List<OutputText> text = new ArrayList<>();
        for (GenerateRequest.Item item : req.items()) {
            Sequence leader = null;
            int n = item.params().n();
            // an embeddings prompt's samples share its KV in a cache namespace of their own
            long namespace = item.embeds() == null ? 0 : ThreadLocalRandom.current().nextLong() | 1;
            for (int j = 0; j < n; j++) {
                String rid = n == 1 ? item.rid() : item.rid() + "_" + j;
                Long seed = item.params().seed();
                // n samples of one seeded request differ from each other but repeat across calls
                long s = seed == null ? ThreadLocalRandom.current().nextLong() : seed * 0x9E3779B97F4A7C15L + j;
                boolean engineDecodes = tokenizer != null && OutputText.engineDecodes(item.params());
                text.add(tokenizer == null || engineDecodes ? null
                        : new OutputText(tokenizer, item.params().skipSpecialTokens(), item.inputIds()));
                Sequence seq = new Sequence(rid, index++, item.inputIds(), item.params(), item.logprobs(),
                        engineDecodes ? tokenizer : null, loop.relaying(events::add), req.stream(), s);
                if (item.embeds() != null) seq.withPromptEmbeds(item.embeds(), namespace);
                if (item.routedExperts()) seq.collectRoutedExperts();
                if (leader == null) leader = seq;
                else seq.sharePrefixWith(leader);
                sequences.add(seq);
                itemOf.add(item);
            }
        }
        finals = new SequenceOutput[sequences.size()];
        texts = text.toArray(new OutputText[0]);
        remaining = sequences.size();
    }

    /** Claims the rids (a 400 when one is already running) and hands the sequences to the engine. */
    void submit() {
        inFlight.claim(rids());
        claimed = true;
        if (sessionTurn == null) {
            loop.submit(new EngineCommand.Generate(sequences));
            return;
        }
        // the engine checks a session turn against the session's history: wait for its verdict, so that a
        // refusal is a 4xx before any of the answer is written (and the rid is free again)
        try {
            SessionParams.awaitAdmission(loop.submit(new EngineCommand.Generate(sequences, Map.of(sequences.get(0).rid(), sessionTurn))),
                    () -> abort("the engine did not take the session's turn in time"));
        } catch (RuntimeException e) {
            release();
            throw e;
        }
    }

    /** Frees the rids for new requests; called once the relay has ended, whatever the ending. */
    void release() {
        if (claimed) inFlight.release(rids());
        claimed = false;
    }

    private List<String> rids() {
        List<String> rids = new ArrayList<>(sequences.size());
        for (Sequence s : sequences) rids.add(s.rid());
        return rids;
    }

    /** The next snapshot, or null after {@code timeoutMs}. Records finished ones. */
    SequenceOutput poll(long timeoutMs) throws InterruptedException {
        SequenceOutput out = events.poll(timeoutMs, TimeUnit.MILLISECONDS);
        if (out != null && texts[out.index()] != null) out = texts[out.index()].apply(out);
        if (out != null && out.finished() && finals[out.index()] == null) {
            finals[out.index()] = out;
            remaining--;
        }
        return out;
    }

    /** How many sequences (the request's items times their n). */
    int size() {
        return sequences.size();
    }

    boolean done() {
        return remaining == 0;
    }

    GenerateRequest.Item item(int index) {
        return itemOf.get(index);
    }

    SequenceOutput[] finals() {
        return finals;
    }

    /** Aborts whatever has not finished; the engine answers with partial outputs. */
    void abort(String message) {
        Set<String> rids = new HashSet<>();
        for (Sequence s : sequences) rids.add(s.rid());
        loop.submit(new EngineCommand.Abort(RequestMatch.ids(rids), message));
    }
}
