package it.dev.rollout.sglang;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import it.dev.rollout.Http;
import it.dev.rollout.Sse;
import jakarta.json.JsonObject;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

/**
 * A streamed {@code /generate} call read as it arrives, so a test can act once the request is
 * decoding rather than after a guessed sleep: SGLang's tests sleep 2 s into a GPU's decode; on a
 * loaded two-core machine the first token may take longer than that, on an idle one 2,000 tokens
 * may take less.
 */
final class LiveStream {
    private final AtomicInteger tokens = new AtomicInteger();
    private final AtomicReference<JsonObject> last = new AtomicReference<>();
    private final CompletableFuture<JsonObject> done;

    LiveStream(JsonObject body) {
        HttpRequest request = HttpRequest.newBuilder(URI.create(Http.BASE + "/generate")).timeout(Duration.ofSeconds(600))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString())).build();
        done = Http.CLIENT.sendAsync(request, HttpResponse.BodyHandlers.ofLines()).thenApply(this::read);
    }

    private JsonObject read(HttpResponse<Stream<String>> r) {
        assertEquals(200, r.statusCode());
        r.body().filter(l -> l.startsWith("data: ") && !l.equals("data: [DONE]")).forEach(l -> {
            JsonObject chunk = Sse.json(l.substring(6));
            last.set(chunk);
            tokens.set(chunk.getJsonObject("meta_info").getInt("completion_tokens"));
        });
        return last.get();
    }

    /** Output tokens so far. */
    int tokens() {
        return tokens.get();
    }

    boolean finished() {
        return done.isDone();
    }

    /** Waits (up to 5 minutes) until the request has more than {@code n} tokens or has finished. */
    void awaitTokensOver(int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
        while (tokens() <= n && !finished()) {
            assertTrue(System.nanoTime() < deadline, "no token past " + n + " within 5 minutes");
            Thread.sleep(5);
        }
    }

    /** The finishing chunk (its meta_info is the whole answer's, spans included). */
    JsonObject result() throws Exception {
        return done.get(10, TimeUnit.MINUTES);
    }
}
