package dev.rollout.api;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.Sequence;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.tokenizer.HfTokenizer;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
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
    private final EngineLoop loop;
    private int remaining;

    PendingGeneration(GenerateRequest req, EngineLoop loop, HfTokenizer tokenizer) {
        this.loop = loop;
        int index = 0;
        for (GenerateRequest.Item item : req.items()) {
            Sequence leader = null;
            int n = item.params().n();
            for (int j = 0; j < n; j++) {
                String rid = n == 1 ? item.rid() : item.rid() + "_" + j;
                Long seed = item.params().seed();
                // n samples of one seeded request differ from each other but repeat across calls
                long s = seed == null ? ThreadLocalRandom.current().nextLong() : seed * 0x9E3779B97F4A7C15L + j;
                Sequence seq = new Sequence(rid, index++, item.inputIds(), item.params(), item.logprobs(), tokenizer,
                        events::add, req.stream(), s);
                if (leader == null) leader = seq;
                else seq.sharePrefixWith(leader);
                sequences.add(seq);
                itemOf.add(item);
            }
        }
        finals = new SequenceOutput[sequences.size()];
        remaining = sequences.size();
    }

    void submit() {
        loop.submit(sequences);
    }

    /** The next snapshot, or null after {@code timeoutMs}. Records finished ones. */
    SequenceOutput poll(long timeoutMs) throws InterruptedException {
        SequenceOutput out = events.poll(timeoutMs, TimeUnit.MILLISECONDS);
        if (out != null && out.finished() && finals[out.index()] == null) {
            finals[out.index()] = out;
            remaining--;
        }
        return out;
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
        loop.abort(rids::contains, message);
    }
}
