package dev.rollout.engine;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Everything another thread may ask of the engine, as plain data. The engine thread runs each
 * command between two steps and completes its future with a result of type {@code R}; nothing
 * else reaches engine state. A command carries no code, but for one: {@link WeightGroupCall}
 * carries rank 0's part in an operation that the other tensor-parallel ranks get as data.
 *
 * <p>Failures complete the future exceptionally: {@link IllegalArgumentException} for a command
 * the engine cannot apply as given (an unknown parameter, a wrong shape), {@link
 * IllegalStateException} for one the engine's state refuses now (requests running, memory released).
 *
 * @param <R> what the command answers
 */
public sealed interface EngineCommand<R> {

    /**
     * Queues sequences for generation; answers how many. A sequence whose rid is in {@code
     * sessionTurns} continues a session: the engine puts the session's history before its prompt,
     * or refuses the whole command (the future fails, nothing is queued) when the turn is invalid.
     */
    record Generate(List<Sequence> sequences, Map<String, SessionTurn> sessionTurns) implements EngineCommand<Integer> {
        public Generate {
            sequences = List.copyOf(sequences);
            sessionTurns = Map.copyOf(sessionTurns);
        }

        public Generate(List<Sequence> sequences) {
            this(sequences, Map.of());
        }
    }

    /**
     * Opens a session (SGLang's open_session) that may keep up to {@code capacityTokens} of KV
     * pinned; answers its id ({@code sessionId}, or a new one when that is null). Refused when the
     * id is open already (IllegalArgumentException) or a server limit is reached ({@link SessionLimitExceeded}).
     *
     * @param streaming   SGLang's streaming session: a linear conversation whose turns each continue
     *                    the last one that ended well, one at a time
     * @param idleTimeout close it after this long without a request, or null for never
     */
    record OpenSession(String sessionId, long capacityTokens, boolean streaming, Duration idleTimeout) implements EngineCommand<String> {
        public OpenSession {
            if (capacityTokens < 0) throw new IllegalArgumentException("a session's capacity cannot be negative");
            if (idleTimeout != null && (idleTimeout.isNegative() || idleTimeout.isZero()))
                throw new IllegalArgumentException("a session's timeout must be positive");
        }
    }

    /** Closes a session and gives back its pinned KV; answers whether it was open. */
    record CloseSession(String sessionId) implements EngineCommand<Boolean> {
        public CloseSession {
            Objects.requireNonNull(sessionId);
        }
    }

    /**
     * Ends the matching running and waiting requests with their partial output; answers how many.
     * Waiting ones report {@code waitingMessage} (SGLang's "Abort in waiting queue" for /abort_request).
     */
    record Abort(RequestMatch match, String message, String waitingMessage) implements EngineCommand<Integer> {
        public Abort(RequestMatch match, String message) {
            this(match, message, message);
        }

        public Abort {
            Objects.requireNonNull(match);
            Objects.requireNonNull(message);
            Objects.requireNonNull(waitingMessage);
        }
    }

    /** Stops stepping; answers how many requests the mode affected. */
    record Pause(PauseMode mode) implements EngineCommand<Integer> {
        public Pause {
            Objects.requireNonNull(mode);
        }
    }

    /** Steps again after a pause or a drain; answers whether the engine was paused. */
    record Continue() implements EngineCommand<Boolean> {}

    /**
     * Waits, for at most {@code timeout}, until no request runs or waits. With {@link
     * DrainMode#WAIT} (SGLang's drain) that is all: nothing is held back, cut or paused. With
     * RETRACT or ABORT new requests are held back meanwhile, what still runs at the deadline is
     * cut so, and the engine is left paused (ours).
     */
    record Drain(Duration timeout, DrainMode mode) implements EngineCommand<DrainResult> {
        public Drain {
            if (timeout.isNegative()) throw new IllegalArgumentException("a drain's timeout cannot be negative");
            Objects.requireNonNull(mode);
        }
    }

    /**
     * Copies new weights into the model between two steps. With {@code update.abortAll()} the
     * running requests are aborted first; on a paused engine it applies at once; otherwise it
     * waits, admitting nothing new, until what runs has finished, for at most {@code maxWait}.
     * The engine owns the update's tensors from here on and frees them.
     */
    record UpdateWeights(WeightUpdate update, Duration maxWait) implements EngineCommand<UpdateRecord> {
        public UpdateWeights {
            Objects.requireNonNull(update);
            Objects.requireNonNull(maxWait);
        }
    }

    /** Relabels the served weights (SGLang's update_weight_version); answers the new version. */
    record SetWeightVersion(String version, boolean abortAll) implements EngineCommand<String> {
        public SetWeightVersion {
            Objects.requireNonNull(version);
        }
    }

    /** Gives memory back; refused while any request runs or waits. */
    record ReleaseMemory(Set<MemoryTag> tags) implements EngineCommand<ReleaseReport> {
        public ReleaseMemory {
            tags = Set.copyOf(tags);
        }
    }

    /** Allocates released memory again (and restores the weights where a host copy was kept). */
    record ResumeMemory(Set<MemoryTag> tags) implements EngineCommand<ResumeReport> {
        public ResumeMemory {
            tags = Set.copyOf(tags);
        }
    }

    /**
     * Captures the CUDA graphs of decode steps ahead of use, for every batch size and contexts of up
     * to {@code contextTokens}; answers how many (0 while any request runs or waits: the captures
     * run forwards over the cache).
     */
    record CaptureGraphs(int contextTokens) implements EngineCommand<Integer> {}

    /** Drops the prefix cache; answers false (nothing done) while any request runs or waits. */
    record FlushCache() implements EngineCommand<Boolean> {}

    /**
     * The first {@code rows} rows of a parameter (slices along its first dimension: values of a
     * 1-D one), by Hugging Face name, as SGLang's {@code param.tolist()[:truncate_size]}.
     */
    record ReadParameter(String name, int rows) implements EngineCommand<ParameterValues> {
        public ReadParameter {
            Objects.requireNonNull(name);
            if (rows <= 0) throw new IllegalArgumentException("rows must be positive");
        }
    }

    /** SHA-256 of every parameter. */
    record Checksums() implements EngineCommand<WeightChecksums> {}

    /** weights_checker's snapshot: a host copy of every parameter, replacing the last one. */
    record SnapshotWeights() implements EngineCommand<WeightCheck> {}

    /**
     * weights_checker's reset_tensors: noise in every parameter whose name contains none of
     * {@code skip} (SGLang's skip_tensor_list), which the engine then refuses to serve until each
     * one is pushed again. Refused while requests run or the weights are released.
     */
    record ResetWeights(List<String> skip) implements EngineCommand<WeightCheck> {
        public ResetWeights {
            skip = List.copyOf(skip);
        }
    }

    /** weights_checker's compare: every parameter whose name contains none of {@code skip} against the snapshot, bit for bit. */
    record CompareWeights(List<String> skip) implements EngineCommand<WeightCheck> {
        public CompareWeights {
            skip = List.copyOf(skip);
        }
    }

    /**
     * A weight-update group's operation at tensor-parallel size &gt; 1 (join, receive a push,
     * leave): the engine thread sends {@code op} to the other ranks between two steps, runs
     * {@code here}, this rank's part of it, while they run theirs, and gathers how each went. No
     * step runs meanwhile, so the group's broadcasts never share a device with a step's
     * collectives (NCCL can deadlock when two communicators' kernels wait on each other). Each
     * part has the group's deadline, {@code bound}; the engine stays live while it waits.
     */
    record WeightGroupCall<T>(dev.rollout.dist.WeightGroupOp op, Duration bound, java.util.concurrent.Callable<T> here,
                              java.util.concurrent.atomic.AtomicBoolean claimed)
            implements EngineCommand<dev.rollout.dist.WeightGroupOp.Outcome<T>> {
        public WeightGroupCall {
            Objects.requireNonNull(op);
            Objects.requireNonNull(here);
            Objects.requireNonNull(claimed);
        }

        public WeightGroupCall(dev.rollout.dist.WeightGroupOp op, Duration bound, java.util.concurrent.Callable<T> here) {
            this(op, bound, here, new java.util.concurrent.atomic.AtomicBoolean());
        }

        /**
         * Claims the call, once: the engine thread before it starts it, or the caller that stops
         * waiting for a start (then the engine skips it, on every rank). True for the first.
         */
        public boolean claim() {
            return claimed.compareAndSet(false, true);
        }
    }
}
