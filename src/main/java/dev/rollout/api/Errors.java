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

    /**
     * The error for a request to {@code path}: OpenAI's shape ({@code {"error": {"message", "type",
     * "param", "code"}}}, which its SDKs read into their typed errors) under {@code v1/}, SGLang's elsewhere.
     */
    public static Response response(int status, String message, String path) {
        if (path == null || !path.replaceFirst("^/+", "").startsWith("v1/")) return response(status, message);
        String type = switch (status) {
            case 401 -> "authentication_error";
            case 403 -> "permission_error";
            case 404 -> "not_found_error";
            default -> status >= 500 ? "server_error" : "invalid_request_error";
        };
        JsonObject body = JSON.createObjectBuilder().add("error", JSON.createObjectBuilder()
                .add("message", message == null ? "" : message).add("type", type).addNull("param").addNull("code")).build();
        return Response.status(status).type(MediaType.APPLICATION_JSON).entity(body.toString()).build();
    }
}
