package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class OutputRelayTest {
    private static SequenceOutput output(int index, int tokens) {
        return new SequenceOutput("r" + index, index, new int[tokens], null, null, 1, 0, 0, List.of(), List.of(), "v", List.of(),
                0, Double.NaN);
    }

    @Test
    void everyListenerGetsItsSnapshotsInOrderOffTheProducingThread() throws Exception {
        int listeners = 64, steps = 200;
        List<List<Integer>> seen = new ArrayList<>();
        List<Thread> on = new ArrayList<>();
        CountDownLatch all = new CountDownLatch(listeners * steps);
        try (OutputRelay relay = new OutputRelay(Thread::new)) {
            List<SequenceListener> relayed = new ArrayList<>();
            for (int i = 0; i < listeners; i++) {
                List<Integer> mine = new ArrayList<>();  // written by the relay thread only
                seen.add(mine);
                relayed.add(relay.relaying(o -> {
                    mine.add(o.outputIds().length);
                    synchronized (on) {
                        if (on.isEmpty()) on.add(Thread.currentThread());
                    }
                    all.countDown();
                }));
            }
            // one producer, as the engine thread is: a snapshot per sequence per step, pausing between
            // steps so that the relay goes idle and must be woken again
            for (int step = 1; step <= steps; step++) {
                for (int i = 0; i < listeners; i++) relayed.get(i).onOutput(output(i, step));
                if (step % 50 == 0) Thread.sleep(30);
            }
            assertTrue(all.await(30, TimeUnit.SECONDS), "undelivered: " + all.getCount());
        }
        for (List<Integer> mine : seen) {
            assertEquals(steps, mine.size());
            for (int k = 0; k < steps; k++) assertEquals(k + 1, mine.get(k), "out of order");
        }
        assertNotEquals(Thread.currentThread(), on.get(0), "delivered on the producing thread");
    }

    @Test
    void closeDeliversWhatIsQueuedAndLaterOutputsGoDirectly() {
        List<String> got = new ArrayList<>();
        OutputRelay relay = new OutputRelay(Thread::new);
        SequenceListener l = relay.relaying(o -> {
            synchronized (got) {
                got.add(o.rid());
            }
        });
        for (int i = 0; i < 1000; i++) l.onOutput(output(i, 1));
        relay.close();
        assertEquals(1000, got.size(), "close must deliver the queue");
        l.onOutput(output(1000, 1));  // after close: delivered on this thread
        assertEquals("r1000", got.get(1000));
    }

    /**
     * What the holding thread (the engine thread during a step) hands over waits until it releases
     * it, then arrives in order; another thread's outputs are not held meanwhile.
     */
    @Test
    void heldSnapshotsGoTogetherAtReleaseAndOnlyTheHoldersAreHeld() throws Exception {
        List<String> got = new ArrayList<>();
        CountDownLatch other = new CountDownLatch(1), all = new CountDownLatch(101);
        try (OutputRelay relay = new OutputRelay(Thread::new)) {
            SequenceListener l = relay.relaying(o -> {
                synchronized (got) {
                    got.add(o.rid());
                }
                if (o.rid().equals("other")) other.countDown();
                all.countDown();
            });
            relay.hold();
            for (int i = 0; i < 100; i++) l.onOutput(output(i, 1));
            Thread t = new Thread(() -> l.onOutput(new SequenceOutput("other", 0, new int[0], null, null, 1, 0, 0, List.of(),
                    List.of(), "v", List.of(), 0, Double.NaN)));
            t.start();
            assertTrue(other.await(30, TimeUnit.SECONDS), "another thread's output was held");
            Thread.sleep(50);  // time the relay would need to deliver what was held, were it queued
            synchronized (got) {
                assertEquals(List.of("other"), got, "the holder's outputs went before its release");
            }
            relay.release();
            assertTrue(all.await(30, TimeUnit.SECONDS), "undelivered: " + all.getCount());
        }
        for (int i = 0; i < 100; i++) assertEquals("r" + i, got.get(i + 1), "out of order");
    }

    @Test
    void aFailingListenerDoesNotStopTheOthers() throws Exception {
        CountDownLatch good = new CountDownLatch(10);
        try (OutputRelay relay = new OutputRelay(Thread::new)) {
            SequenceListener bad = relay.relaying(o -> {
                throw new IllegalStateException("listener broke");
            });
            SequenceListener fine = relay.relaying(o -> good.countDown());
            for (int i = 0; i < 10; i++) {
                bad.onOutput(output(i, 1));
                fine.onOutput(output(i, 1));
            }
            assertTrue(good.await(30, TimeUnit.SECONDS));
        }
    }

    /**
     * A step's observer calls (the metrics) run on the relay thread, in order and before the
     * step's snapshots; a call made while not holding runs at once on its own thread.
     */
    @Test
    void heldObserverCallsRunOnTheRelayBeforeTheStepsSnapshots() throws Exception {
        List<String> got = new ArrayList<>();
        List<Thread> on = new ArrayList<>();
        CountDownLatch all = new CountDownLatch(6);
        EngineObserver target = new EngineObserver() {
            @Override
            public void onStep(int sequences, int tokens, int sampled, double modelSeconds, double hostSeconds) {
                note("step " + sequences + " " + tokens + " " + sampled + " " + modelSeconds + " " + hostSeconds);
            }

            @Override
            public void onInterTokenLatency(double seconds) {
                note("itl " + seconds);
            }

            @Override
            public void onFinished(SequenceOutput output) {
                note("finished " + output.rid());
            }

            private void note(String what) {
                synchronized (got) {
                    got.add(what);
                    on.add(Thread.currentThread());
                }
                all.countDown();
            }
        };
        try (OutputRelay relay = new OutputRelay(Thread::new)) {
            EngineObserver observer = relay.observing(target);
            SequenceListener l = relay.relaying(o -> {
                synchronized (got) {
                    got.add("output " + o.rid());
                    on.add(Thread.currentThread());
                }
                all.countDown();
            });
            observer.onInterTokenLatency(0.5);  // not holding: at once, here
            assertEquals(List.of("itl 0.5"), got);
            assertEquals(Thread.currentThread(), on.get(0));
            relay.hold();
            observer.onInterTokenLatency(0.25);
            l.onOutput(output(0, 1));
            observer.onFinished(output(1, 2));
            l.onOutput(output(1, 2));
            observer.onStep(2, 3, 2, 0.125, 0.0625);
            Thread.sleep(50);  // time the relay would need, were anything queued before the release
            synchronized (got) {
                assertEquals(1, got.size(), "a held call ran before the release");
            }
            relay.release();
            assertTrue(all.await(30, TimeUnit.SECONDS), "undelivered: " + all.getCount());
        }
        assertEquals(List.of("itl 0.5", "itl 0.25", "finished r1", "step 2 3 2 0.125 0.0625", "output r0", "output r1"), got);
        for (int i = 1; i < on.size(); i++) assertNotEquals(Thread.currentThread(), on.get(i), "ran on the holding thread");
    }
}
