package dev.rollout.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Test;

/**
 * The router's failover against servers that do not answer: real connections to ports where
 * nothing listens (the ITs check it beside a live server).
 */
class RolloutRouterTest {
    static URI deadServer() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return URI.create("http://localhost:" + s.getLocalPort());
        }
    }

    @Test
    void aGenerationTriesEachServerOnceThenFailsWithNoAnswer() throws Exception {
        RolloutRouter router = new RolloutRouter(List.of(RolloutClient.connect(deadServer()), RolloutClient.connect(deadServer())),
                Duration.ofMinutes(5));
        ExecutionException e = assertThrows(ExecutionException.class,
                () -> router.generateAsync("group-1", new int[] {1, 2}, Sampling.greedy(2)).get());
        RolloutClientException cause = assertInstanceOf(RolloutClientException.class, e.getCause());
        assertEquals(0, cause.status(), "no HTTP answer");
        assertEquals(1, router.dispatched(0));
        assertEquals(1, router.dispatched(1));
        assertFalse(router.available(0) || router.available(1), "both are out for the cool-off");
        assertEquals(0, router.outstanding(0) + router.outstanding(1));
    }

    @Test
    void aServerIsTriedAgainAfterItsCoolOff() throws Exception {
        RolloutRouter router = new RolloutRouter(List.of(RolloutClient.connect(deadServer())), Duration.ofMillis(200));
        assertThrows(ExecutionException.class, () -> router.generateAsync(null, new int[] {1}, Sampling.greedy(1)).get());
        assertFalse(router.available(0));
        Thread.sleep(400);
        assertTrue(router.available(0), "back in after the cool-off");
    }

    @Test
    void aServerWhosePushFailedIsLeftOut() throws Exception {
        RolloutRouter router = new RolloutRouter(List.of(RolloutClient.connect(deadServer())), Duration.ofMillis(1));
        assertThrows(RolloutClientException.class, () -> router.pushWeights(new byte[] {0}, "v1"));
        Thread.sleep(10);
        assertFalse(router.available(0), "it would serve the old weights: out until a push to it succeeds");
    }
}
