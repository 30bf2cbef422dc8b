package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import dev.rollout.engine.EngineLoop;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import jakarta.json.JsonArrayBuilder;
import jakarta.json.JsonObject;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.PUT;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.StreamingOutput;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * {@code POST /generate}: SGLang's native generation call, token ids or text in, token ids,
 * text and logprobs out, whole or as server-sent events.
 *
 * <p>The request thread only waits on a queue. It writes a keep-alive (a space in JSON, a
 * comment in SSE) whenever nothing else is due, because a write is how a servlet container
 * notices that the client has gone; a client that disconnects has its sequences aborted and
 * their KV freed within one keep-alive interval.
 */
@Path("/generate")
@ApplicationScoped
public class GenerateResource {
    @Inject
    EngineService service;

    @POST
    public Response generate(InputStream body) {
        return handle(body);
    }

    @PUT
    public Response generatePut(InputStream body) {
        return handle(body);
    }

    private Response handle(InputStream body) {
        EngineLoop loop = Requests.generationLoop(service);
        ServerSettings settings = service.settings();
        JsonObject json = JsonBodies.object(body, settings.maxBodyBytes());
        GenerateRequest req = Requests.parser(service).parse(json);
        PendingGeneration pending = new PendingGeneration(req, loop, service.tokenizer());
        GenerateResponses responses = new GenerateResponses(service.tokenizer(), req.returnTextInLogprobs());
        pending.submit();
        StreamingOutput out = os -> relay(pending, req, responses, os, settings);
        return req.stream()
                ? Response.ok(out, "text/event-stream").header("Cache-Control", "no-cache").build()
                : Response.ok(out, "application/json").build();
    }

    private static void relay(PendingGeneration pending, GenerateRequest req, GenerateResponses responses, OutputStream os,
                              ServerSettings settings) throws IOException {
        long keepaliveMs = Math.max(1, (long) (settings.keepaliveSeconds() * 1000));
        long deadline = System.nanoTime() + (long) (settings.requestTimeoutSeconds() * 1e9);
        boolean timedOut = false;
        boolean incremental = settings.incrementalStreamingOutput();
        GenerateResponses.Sent[] sent = new GenerateResponses.Sent[pending.size()];
        Arrays.fill(sent, GenerateResponses.Sent.NOTHING);
        try {
            while (!pending.done()) {
                SequenceOutput ev = pending.poll(keepaliveMs);
                if (ev == null) {
                    if (!timedOut && System.nanoTime() > deadline) {
                        timedOut = true;
                        pending.abort("request exceeded rollout.request-timeout-seconds");
                    } else if (timedOut && System.nanoTime() > deadline + 30_000_000_000L) {
                        break; // the engine never answered the abort; stop waiting
                    }
                    write(os, req.stream() ? ": keepalive\n\n" : " ");
                } else if (req.stream()) {
                    int i = ev.index();
                    JsonObject chunk = responses.toJson(ev, pending.item(i), i, req.answersWithList(),
                            incremental ? sent[i] : GenerateResponses.Sent.NOTHING);
                    if (incremental) sent[i] = GenerateResponses.Sent.after(ev);
                    write(os, "data: " + chunk + "\n\n");
                }
            }
        } catch (IOException disconnected) {
            pending.abort("client disconnected");
            return;
        } catch (InterruptedException e) {
            pending.abort("server interrupted");
            Thread.currentThread().interrupt();
            return;
        }
        if (req.stream()) {
            write(os, "data: [DONE]\n\n");
            return;
        }
        SequenceOutput[] finals = pending.finals();
        if (!req.answersWithList()) {
            write(os, responses.toJson(finals[0], pending.item(0), 0, false).toString());
            return;
        }
        JsonArrayBuilder all = JSON.createArrayBuilder();
        for (int i = 0; i < finals.length; i++) {
            if (finals[i] == null) all.add(Errors.body(504, "no answer from the engine"));
            else all.add(responses.toJson(finals[i], pending.item(i), i, false));
        }
        write(os, all.build().toString());
    }

    private static void write(OutputStream os, String s) throws IOException {
        os.write(s.getBytes(StandardCharsets.UTF_8));
        os.flush();
    }
}
