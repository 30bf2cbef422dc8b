package dev.rollout.api;

import static dev.rollout.api.JsonBodies.JSON;

import jakarta.json.JsonObject;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;

/**
 * The error bodies: SGLang's general one, {@code {"object":"error","message":...,"type":...,"param":null,"code":N}};
 * SGLang's {@code /generate} one, {@code {"error": {"message": ...}}}; OpenAI's under {@code /v1/}.
 */
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
     * SGLang's {@code /generate} error ({@code http_server._create_error_response}): clients of
     * {@code /generate} read {@code error.message}.
     */
    public static JsonObject generateBody(String message) {
        return JSON.createObjectBuilder().add("error", JSON.createObjectBuilder().add("message", message == null ? "" : message)).build();
    }

    /**
     * The error for a request to {@code path}: SGLang's {@code /generate} shape there, OpenAI's shape
     * ({@code {"error": {"message", "type", "param", "code"}}}, which its SDKs read into their
     * typed errors) under {@code v1/}, SGLang's general one elsewhere.
     */
    public static Response response(int status, String message, String path) {
        return Response.status(status).type(MediaType.APPLICATION_JSON).entity(body(status, message, path).toString()).build();
    }

    /** The body of {@link #response(int, String, String)}. */
    static JsonObject body(int status, String message, String path) {
        String p = path == null ? "" : path.replaceFirst("^/+", "");
        if (p.equals("generate") || p.equals("generate/")) return generateBody(message);
        if (!p.startsWith("v1/")) return body(status, message);
        String type = switch (status) {
            case 401 -> "authentication_error";
            case 403 -> "permission_error";
            case 404 -> "not_found_error";
            default -> status >= 500 ? "server_error" : "invalid_request_error";
        };
        return JSON.createObjectBuilder().add("error", JSON.createObjectBuilder()
                .add("message", message == null ? "" : message).add("type", type).addNull("param").addNull("code")).build();
    }
}
