package dev.rollout.api;

import dev.rollout.engine.FinishReason;
import dev.rollout.engine.SequenceOutput;
import dev.rollout.runtime.ServerSettings;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.StreamingOutput;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * Carries a pending generation to its HTTP client in an endpoint's format (SGLang's
 * {@code /generate}, OpenAI's completions). The request thread only waits on a queue. It writes a
 * keep-alive (a space in JSON, a comment in SSE) whenever nothing else is due, because a write is
 * how a servlet container notices that the client has gone; a client that disconnects has its
 * sequences aborted and their KV freed within one keep-alive interval.
 */
final class GenerationRelay {
    /** How an endpoint writes what the relay hands it. */
    interface Format {
        /** Streaming: the server-sent event for one snapshot, or null for none. */
        String event(SequenceOutput snapshot);

        /** Streaming: what closes the stream after the last event. */
        String end(SequenceOutput[] finals);

        /** Not streaming: the whole answer; a final may be null when the engine never answered. */
        String whole(SequenceOutput[] finals);
    }

    private GenerationRelay() {}

    /**
     * Submits {@code pending} and answers with its relay: server-sent events or one JSON body. A
     * whole answer waits up to one keep-alive interval before its status is sent, so that a
     * request the engine refuses at once (SGLang's waiting or running timeout) is answered with
     * that status and SGLang's error body, not a 200.
     */
    static Response respond(PendingGeneration pending, boolean stream, Format format, ServerSettings settings) {
        pending.submit();
        if (!stream) {
            long until = System.nanoTime() + (long) (Math.max(0.001, settings.keepaliveSeconds()) * 1e9);
            try {
                while (!pending.done() && System.nanoTime() < until)
                    pending.poll(Math.max(1, (until - System.nanoTime()) / 1_000_000));
            } catch (InterruptedException e) {
                pending.abort("server interrupted");
                Thread.currentThread().interrupt();
            }
            FinishReason refused = pending.done() ? refusal(pending.finals()) : null;
            if (refused != null) {
                pending.release();  // no relay runs to free its rids
                return Errors.response(refused.statusCode(), refused.message());
            }
        }
        StreamingOutput out = os -> run(pending, stream, format, os, settings);
        return stream
                ? Response.ok(out, "text/event-stream").header("Cache-Control", "no-cache").build()
                : Response.ok(out, "application/json").build();
    }

    static void run(PendingGeneration pending, boolean stream, Format format, OutputStream os, ServerSettings settings)
            throws IOException {
        try {
            relay(pending, stream, format, os, settings);
        } finally {
            pending.release();
        }
    }

    private static void relay(PendingGeneration pending, boolean stream, Format format, OutputStream os, ServerSettings settings)
            throws IOException {
        long keepaliveMs = Math.max(1, (long) (settings.keepaliveSeconds() * 1000));
        long deadline = System.nanoTime() + (long) (settings.requestTimeoutSeconds() * 1e9);
        boolean timedOut = false;
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
                    write(os, stream ? ": keepalive\n\n" : " ");
                } else if (stream) {
                    String event = format.event(ev);
                    if (event != null) write(os, event);
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
        FinishReason refused = stream ? null : refusal(pending.finals());
        // the status is sent already; the body still says what SGLang's says
        if (refused != null) write(os, Errors.body(refused.statusCode(), refused.message()).toString());
        else write(os, stream ? format.end(pending.finals()) : format.whole(pending.finals()));
    }

    /** The first abort that carries an HTTP status (a timeout), which SGLang answers as an error for the whole call. */
    static FinishReason refusal(SequenceOutput[] finals) {
        for (SequenceOutput f : finals)
            if (f != null && f.finishReason() != null && f.finishReason().statusCode() != 0) return f.finishReason();
        return null;
    }

    private static void write(OutputStream os, String s) throws IOException {
        os.write(s.getBytes(StandardCharsets.UTF_8));
        os.flush();
    }
}
