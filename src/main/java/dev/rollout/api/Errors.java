package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import jakarta.json.JsonObject;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;

/** SGLang's error body: {@code {"object":"error","message":...,"type":...,"param":null,"code":N}}. */
public final class Errors {
    private Errors() {}

    public static JsonObject body(int status, String message) {
        Response.Status s = Response.Status.fromStatusCode(status);
        return JSON.createObjectBuilder()
                .add("object", "error")
                .add("message", message == null ? "" : message)
                .add("type", s != null ? s.getReasonPhrase() : String.valueOf(status))
                .addNull("param")
                .add("code", status)
                .build();
    }

    public static Response response(int status, String message) {
        return Response.status(status).type(MediaType.APPLICATION_JSON).entity(body(status, message).toString()).build();
    }
}
