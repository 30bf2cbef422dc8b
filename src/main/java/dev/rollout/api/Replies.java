package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import jakarta.json.JsonObjectBuilder;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/** SGLang's control-route answers: {@code {"success": true|false, "message": ...}}, 200 or 4xx. */
final class Replies {
    private Replies() {}

    static JsonObjectBuilder ok(String message) {
        return JSON.createObjectBuilder().add("success", true).add("message", message);
    }

    static Response json(JsonObjectBuilder b) {
        return Response.ok(b.build().toString(), MediaType.APPLICATION_JSON).build();
    }

    static Response failure(int status, String message) {
        return Response.status(status).type(MediaType.APPLICATION_JSON)
                .entity(JSON.createObjectBuilder().add("success", false).add("message", message).build().toString()).build();
    }

    /**
     * Waits for an engine-thread operation. A refusal the engine explains (bad update: 400;
     * wrong state or a wait that ran out: 409) keeps its message; no answer in time is a 503.
     */
    static <T> T await(CompletableFuture<T> f, double seconds) {
        try {
            return f.get((long) Math.ceil(seconds * 1000), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new ApiException(503, "the engine did not answer within " + seconds + " s");
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof IllegalArgumentException) throw new ApiException(400, c.getMessage());
            if (c instanceof IllegalStateException) throw new ApiException(409, c.getMessage());
            throw new ApiException(500, "the engine failed: " + c);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ApiException(503, "interrupted");
        }
    }
}
