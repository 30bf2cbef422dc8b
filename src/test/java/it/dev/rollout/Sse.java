package it.dev.rollout;

import static org.junit.jupiter.api.Assertions.assertEquals;

import jakarta.json.Json;
import jakarta.json.JsonObject;
import java.io.StringReader;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.stream.Collectors;

/** Reads a server-sent-event response into its data payloads (public for it.dev.rollout.sglang). */
public final class Sse {
    public static List<String> post(String path, String body) {
        try {
            HttpResponse<java.util.stream.Stream<String>> r = Http.CLIENT.send(HttpRequest.newBuilder(URI.create(Http.BASE + path))
                    .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofLines());
            assertEquals(200, r.statusCode());
            assertEquals("text/event-stream", r.headers().firstValue("Content-Type").orElse("").split(";")[0]);
            return r.body().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).collect(Collectors.toList());
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    public static JsonObject json(String data) {
        try (var r = Json.createReader(new StringReader(data))) {
            return r.readObject();
        }
    }
}
