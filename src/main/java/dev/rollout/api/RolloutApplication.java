package dev.rollout.api;

import jakarta.ws.rs.ApplicationPath;
import jakarta.ws.rs.core.Application;

/** The SGLang-compatible API at the root, as clients expect ({@code /generate}, {@code /flush_cache}, ...). */
@ApplicationPath("/")
public class RolloutApplication extends Application {}
