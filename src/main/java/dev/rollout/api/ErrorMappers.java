package dev.rollout.api;

import jakarta.json.stream.JsonParsingException;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.UriInfo;
import jakarta.ws.rs.ext.ExceptionMapper;
import jakarta.ws.rs.ext.Provider;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * Every failure leaves in SGLang's error shape, or OpenAI's under {@code /v1/} (Errors); nothing
 * but a real bug is a 5xx.
 */
public final class ErrorMappers {
    private ErrorMappers() {}

    private static String path(UriInfo uri) {
        try {
            return uri == null ? null : uri.getPath();
        } catch (RuntimeException outsideARequest) {
            return null;
        }
    }

    @Provider
    public static class Api implements ExceptionMapper<ApiException> {
        @Context
        UriInfo uri;

        @Override
        public Response toResponse(ApiException e) {
            return Errors.response(e.status(), e.getMessage(), path(uri));
        }
    }

    @Provider
    public static class Web implements ExceptionMapper<WebApplicationException> {
        @Context
        UriInfo uri;

        @Override
        public Response toResponse(WebApplicationException e) {
            return Errors.response(e.getResponse().getStatus(), e.getMessage(), path(uri));
        }
    }

    @Provider
    public static class Json implements ExceptionMapper<JsonParsingException> {
        @Context
        UriInfo uri;

        @Override
        public Response toResponse(JsonParsingException e) {
            return Errors.response(400, "request body is not valid JSON: " + e.getMessage(), path(uri));
        }
    }

    @Provider
    public static class Unexpected implements ExceptionMapper<RuntimeException> {
        private static final Logger LOG = Logger.getLogger(Unexpected.class.getName());

        @Context
        UriInfo uri;

        @Override
        public Response toResponse(RuntimeException e) {
            if (e instanceof ApiException a) return Errors.response(a.status(), a.getMessage(), path(uri));
            if (e instanceof WebApplicationException w) return Errors.response(w.getResponse().getStatus(), w.getMessage(), path(uri));
            LOG.log(Level.SEVERE, "unexpected error", e);
            return Errors.response(500, "internal error: " + e, path(uri));
        }
    }
}
