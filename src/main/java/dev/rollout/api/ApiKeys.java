package dev.rollout.api;

import dev.rollout.runtime.EngineService;
import dev.rollout.runtime.ServerSettings;
import jakarta.annotation.Priority;
import jakarta.inject.Inject;
import jakarta.ws.rs.Priorities;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.ext.Provider;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/**
 * Bearer-token checks, as SGLang's {@code --api-key} and {@code --admin-api-key}: with an API key
 * set, every route needs it (or the admin key); with an admin key set, every control route needs
 * that one. Health and metrics are separate Liberty endpoints, so probes and scrapers need none.
 */
public final class ApiKeys {
    private ApiKeys() {}

    static String bearer(HttpHeaders headers) {
        return bearer(headers.getHeaderString(HttpHeaders.AUTHORIZATION));
    }

    private static String bearer(String header) {
        if (header == null) return "";
        return header.regionMatches(true, 0, "Bearer ", 0, 7) ? header.substring(7).trim() : "";
    }

    private static boolean matches(String token, String key) {
        return !key.isEmpty() && MessageDigest.isEqual(token.getBytes(StandardCharsets.UTF_8), key.getBytes(StandardCharsets.UTF_8));
    }

    /** Throws 403 unless the caller holds the admin key (or none is configured). */
    static void requireAdmin(ServerSettings s, String token) {
        if (!s.adminApiKey().isEmpty() && !matches(token, s.adminApiKey()))
            throw new ApiException(403, "this is a control route: send the admin API key as 'Authorization: Bearer <key>'");
    }

    static void requireAdmin(ServerSettings s, HttpHeaders headers) {
        requireAdmin(s, bearer(headers));
    }

    @Provider
    @Priority(Priorities.AUTHENTICATION)
    public static class Any implements ContainerRequestFilter {
        @Inject
        EngineService service;

        @Override
        public void filter(ContainerRequestContext ctx) {
            ServerSettings s = service.settings();
            if (s.apiKey().isEmpty()) return;
            String token = bearer(ctx.getHeaderString(HttpHeaders.AUTHORIZATION));
            if (!matches(token, s.apiKey()) && !matches(token, s.adminApiKey()))
                ctx.abortWith(Errors.response(401, "send the API key as 'Authorization: Bearer <key>'"));
        }
    }

    @Admin
    @Provider
    @Priority(Priorities.AUTHORIZATION)
    public static class ControlRoutes implements ContainerRequestFilter {
        @Inject
        EngineService service;

        @Override
        public void filter(ContainerRequestContext ctx) {
            try {
                requireAdmin(service.settings(), bearer(ctx.getHeaderString(HttpHeaders.AUTHORIZATION)));
            } catch (ApiException e) {
                ctx.abortWith(Errors.response(e.status(), e.getMessage()));
            }
        }
    }
}
