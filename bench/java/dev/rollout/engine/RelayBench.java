package dev.rollout.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The engine thread's side of handing a streaming step's snapshots to the output relay: one
 * snapshot per sequence, to a listener that queues it for its HTTP thread (as PendingGeneration's
 * does), with two threads draining those queues as the HTTP threads would. Per step, the
 * producer's time with each snapshot queued on its own and with the step held and released as
 * one batch (what EngineLoop does), alternating rounds.
 *
 *   java -cp ... dev.rollout.engine.RelayBench [SEQUENCES] [STEPS]
 */
public final class RelayBench {
    private RelayBench() {}

    public static void main(String[] args) throws Exception {
        int sequences = args.length > 0 ? Integer.parseInt(args[0]) : 512;
        int steps = args.length > 1 ? Integer.parseInt(args[1]) : 4000;
        List<SequenceOutput> outputs = new ArrayList<>();
        for (int i = 0; i < sequences; i++)
            outputs.add(new SequenceOutput("r" + i, 0, new int[128], null, null, 512, 0, 0, List.of(), List.of(), "v", List.of(), 0, Double.NaN));
        List<ConcurrentLinkedQueue<SequenceOutput>> inboxes = new ArrayList<>();
        for (int i = 0; i < sequences; i++) inboxes.add(new ConcurrentLinkedQueue<>());
        AtomicLong drained = new AtomicLong();
        List<Thread> http = new ArrayList<>();
        for (int t = 0; t < 2; t++) {
            int first = t;
            Thread d = new Thread(() -> {
                while (!Thread.currentThread().isInterrupted()) {
                    for (int i = first; i < inboxes.size(); i += 2)
                        while (inboxes.get(i).poll() != null) drained.incrementAndGet();
                    Thread.onSpinWait();
                }
            });
            d.setDaemon(true);
            d.start();
            http.add(d);
        }
        try (OutputRelay relay = new OutputRelay(Thread::new)) {
            List<SequenceListener> listeners = new ArrayList<>();
            for (int i = 0; i < sequences; i++) listeners.add(relay.relaying(inboxes.get(i)::add));
            for (int round = 1; round <= 2; round++) {
                for (boolean batched : new boolean[] {false, true}) {
                    long[] ns = new long[steps];
                    for (int s = 0; s < steps; s++) {
                        long t0 = System.nanoTime();
                        if (batched) relay.hold();
                        for (int i = 0; i < sequences; i++) listeners.get(i).onOutput(outputs.get(i));
                        if (batched) relay.release();
                        ns[s] = System.nanoTime() - t0;
                        if (s % 8 == 7) Thread.sleep(0, 200_000);  // the GPU's part of a step, roughly
                    }
                    java.util.Arrays.sort(ns);
                    System.out.printf(Locale.ROOT, "RESULT {\"what\": \"relay\", \"round\": %d, \"batched\": %s, \"sequences\": %d, "
                                    + "\"steps\": %d, \"producer_us_p50\": %.1f, \"producer_us_p90\": %.1f}%n",
                            round, batched, sequences, steps, ns[steps / 2] / 1e3, ns[steps * 9 / 10] / 1e3);
                }
            }
        }
        http.forEach(Thread::interrupt);
    }
}
