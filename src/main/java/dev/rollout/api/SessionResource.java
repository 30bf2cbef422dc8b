package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.EngineCommand;
import dev.rollout.engine.EngineLoop;
import dev.rollout.runtime.EngineService;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonObject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * SGLang's {@code /open_session} and {@code /close_session}. A session remembers its requests so
 * that a later {@code /generate} with {@code session_params} continues one of them with its KV
 * kept (pinned) in the cache; the sessions themselves live on the engine thread, reached by
 * {@link EngineCommand.OpenSession} and {@link EngineCommand.CloseSession}.
 */
@Path("/")
@ApplicationScoped
public class SessionResource {
    private static final double TIMEOUT_S = 30;
    /** A longer id is a client bug; the engine keeps every open id in memory. */
    private static final int MAX_ID_CHARS = 256;
    /** An idle timeout of more than a week is a session nobody means to close. */
    private static final double MAX_IDLE_S = 7 * 24 * 3600;

    @Inject
    EngineService service;

    @POST
    @Path("open_session")
    public Response openPost(InputStream body) {
        return open(body);
    }

    @GET
    @Path("open_session")
    public Response openGet(InputStream body) {
        return open(body);
    }

    @POST
    @Path("close_session")
    public Response closePost(InputStream body) {
        return close(body);
    }

    @GET
    @Path("close_session")
    public Response closeGet(InputStream body) {
        return close(body);
    }

    /**
     * {@code {"capacity_of_str_len": N, "session_id"?: S, "timeout"?: seconds, "streaming"?: false}}
     * → the session's id as a JSON string, as SGLang answers. {@code capacity_of_str_len} is what the
     * session may keep pinned, counted here in tokens; {@code streaming} opens SGLang's streaming
     * session, a linear conversation ({@code engine/Sessions} says how it differs).
     */
    private Response open(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!Fields.present(o, "capacity_of_str_len")) throw ApiException.badRequest("capacity_of_str_len is required");
        long capacity = Fields.integer(o.get("capacity_of_str_len"), "capacity_of_str_len");
        if (capacity < 0) throw ApiException.badRequest("capacity_of_str_len must be >= 0, got " + capacity);
        String id = null;
        if (Fields.present(o, "session_id")) {
            id = Fields.string(o.get("session_id"), "session_id");
            if (id.isEmpty() || id.length() > MAX_ID_CHARS)
                throw ApiException.badRequest("session_id must have 1 to " + MAX_ID_CHARS + " characters, got " + id.length());
        }
        // SGLang's streaming session, which SGLang serves only with --enable-streaming-session (always on here)
        boolean streaming = Fields.present(o, "streaming") && Fields.bool(o.get("streaming"), "streaming");
        Duration timeout = Fields.present(o, "timeout") ? Fields.seconds(o.get("timeout"), "timeout", 0.001, MAX_IDLE_S) : null;
        // the id is made here, not by the engine, so that an open the engine answers too late can be undone
        String sid = id != null ? id : UUID.randomUUID().toString().replace("-", "");
        CompletableFuture<String> opened = loop.submit(new EngineCommand.OpenSession(sid, capacity, streaming, timeout));
        try {
            await(opened);
        } catch (ApiException e) {
            if (e.status() == 503) loop.submit(new EngineCommand.CloseSession(sid));
            throw e;
        }
        return Response.ok(JSON.createValue(sid).toString(), MediaType.APPLICATION_JSON).build();
    }

    /** {@code {"session_id": S}} → 200 with an empty body, as SGLang answers, whether or not it was open. */
    private Response close(InputStream body) {
        EngineLoop loop = Requests.readyLoop(service);
        JsonObject o = JsonBodies.object(body, service.settings().maxBodyBytes());
        if (!Fields.present(o, "session_id")) throw ApiException.badRequest("session_id is required");
        String id = Fields.string(o.get("session_id"), "session_id");
        await(loop.submit(new EngineCommand.CloseSession(id)));
        return Response.ok().build();
    }

    private static <T> T await(CompletableFuture<T> f) {
        try {
            return f.get((long) (TIMEOUT_S * 1000), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new ApiException(503, "the engine did not answer within " + TIMEOUT_S + " s");
        } catch (ExecutionException e) {
            throw SessionParams.refusal(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ApiException(503, "interrupted");
        }
    }
}
