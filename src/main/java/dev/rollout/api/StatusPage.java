package dev.rollout.api;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.servlet.ServletContext;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.NotFoundException;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.core.Context;
import jakarta.ws.rs.core.Response;
import java.io.InputStream;
import java.util.Map;

/**
 * The status page's files (src/main/webapp). The JAX-RS application sits at {@code /}, as
 * SGLang's routes do, so it would answer every path before the servlet container's file serving;
 * these few files are served here instead.
 */
@Path("/")
@ApplicationScoped
public class StatusPage {
    private static final Map<String, String> FILES = Map.of(
            "index.html", "text/html; charset=utf-8",
            "status.js", "text/javascript; charset=utf-8",
            "status.css", "text/css; charset=utf-8");

    @Context
    ServletContext servlet;

    @GET
    public Response index() {
        return file("index.html");
    }

    @GET
    @Path("{file: index\\.html|status\\.js|status\\.css}")
    public Response file(@PathParam("file") String file) {
        InputStream in = servlet.getResourceAsStream("/" + file);
        if (in == null) throw new NotFoundException(file + " is not packaged");
        return Response.ok(in, FILES.get(file)).header("Cache-Control", "no-cache").build();
    }
}
