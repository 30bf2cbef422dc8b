package dev.rollout.api;

import jakarta.annotation.Priority;
import jakarta.servlet.http.HttpServletRequest;
import jakarta.ws.rs.Priorities;
import jakarta.ws.rs.container.ContainerRequestContext;
import jakarta.ws.rs.container.ContainerRequestFilter;
import jakarta.ws.rs.container.PreMatching;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.ext.Provider;
import java.net.URI;

/**
 * Refuses a request whose path or query string is not a valid URI (a '%' not followed by two hex
 * digits, a raw '"' or space in the query) with a 400 naming the problem, before any route runs.
 * Liberty passes such query strings through; RESTEasy parses them only when a route reads its
 * query parameters or UriInfo, and then {@code java.net.URI} throws IllegalArgumentException,
 * which was a 500 ({@code update_weights_from_tensor?bucket_seq=%%%}). Checking once here covers
 * every route, whether or not it reads the query.
 */
@Provider
@PreMatching
@Priority(Priorities.AUTHENTICATION - 100)  // before the key checks: a malformed request is refused as such
public class RequestUris implements ContainerRequestFilter {
    @Context
    HttpServletRequest request;

    @Override
    public void filter(ContainerRequestContext ctx) {
        String path = request.getRequestURI(), query = request.getQueryString();
        String problem = problem(path, query);
        if (problem != null) ctx.abortWith(Errors.response(400, problem, path));
    }

    /** Why {@code path?query} (both raw, as sent) is not a URI, or null. */
    static String problem(String path, String query) {
        try {
            URI.create("http://localhost" + (path == null ? "/" : path) + (query == null ? "" : "?" + query));
            return null;
        } catch (IllegalArgumentException e) {
            String why = e.getCause() != null ? e.getCause().getMessage() : e.getMessage();
            if (why.length() > 200) why = why.substring(0, 200) + "...";
            return "the request URI is not valid (RFC 3986; a '%' must start an escape of two hex digits): " + why;
        }
    }
}
