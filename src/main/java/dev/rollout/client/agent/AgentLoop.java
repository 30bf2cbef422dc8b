package dev.rollout.client.agent;

import dev.rollout.client.Generation;
import dev.rollout.client.RolloutClient;
import dev.rollout.client.Sampling;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

/**
 * Multi-turn episodes against a rollout server and an environment over HTTP: generate, parse the
 * tool calls in the model's chat format, call the environment, append its answers, generate
 * again, until the model answers without a call or the turn limit. The model's tokens are kept as
 * the server returned them; only the environment's text is tokenized (by the server's tokenizer).
 *
 * <p>{@link #run} is the design's point: each episode moves on as soon as its own generation or
 * tool call returns, up to {@code concurrency} episodes at once, so that the engine's continuous
 * batch stays full while other episodes wait on their environment. {@link #runLockStep} is the
 * lock-step baseline the design replaced (generate a batch per turn, then wait for every
 * environment), for comparison on the same episodes.
 */
public final class AgentLoop {
    /**
     * @param maxTurns          assistant turns at most
     * @param sampling          each turn's sampling; {@code maxNewTokens} is per turn
     * @param maxContextTokens  an episode ends (length) before its context would pass this
     * @param concurrency       episodes in flight at once
     * @param deadline          how long one {@code run} may take in all
     */
    public record Options(int maxTurns, Sampling sampling, int maxContextTokens, int concurrency, Duration deadline) {
        public Options {
            if (maxTurns < 1) throw new IllegalArgumentException("maxTurns must be >= 1, not " + maxTurns);
            if (concurrency < 1) throw new IllegalArgumentException("concurrency must be >= 1, not " + concurrency);
        }
    }

    private final RolloutClient server;
    private final Environment env;
    private final Options options;

    public AgentLoop(RolloutClient server, Environment env, Options options) {
        this.server = server;
        this.env = env;
        this.options = options;
    }

    /** The episodes of {@code questions}, in their order, at most {@code concurrency} in flight. */
    public List<Episode> run(List<String> questions) {
        List<CompletableFuture<Episode>> done = new ArrayList<>();
        for (int i = 0; i < questions.size(); i++) done.add(new CompletableFuture<>());
        AtomicInteger next = new AtomicInteger();
        Runnable[] startNext = new Runnable[1];
        startNext[0] = () -> {
            int i = next.getAndIncrement();
            if (i >= questions.size()) return;
            episode(questions.get(i)).whenComplete((e, t) -> {
                if (t != null) done.get(i).completeExceptionally(t);
                else done.get(i).complete(e);
                startNext[0].run();  // a finished episode's slot goes to the next at once
            });
        };
        for (int k = 0; k < Math.min(options.concurrency(), questions.size()); k++) startNext[0].run();
        return await(CompletableFuture.allOf(done.toArray(CompletableFuture[]::new)), done);
    }

    /**
     * The lock-step baseline on the same episodes: groups of {@code concurrency}; in each group,
     * every episode's turn is generated (one batch), then every environment call is awaited, and
     * only then the next turn starts.
     */
    public List<Episode> runLockStep(List<String> questions) {
        List<Episode> out = new ArrayList<>();
        long deadline = System.nanoTime() + options.deadline().toNanos();
        for (int from = 0; from < questions.size(); from += options.concurrency()) {
            List<State> group = questions.subList(from, Math.min(questions.size(), from + options.concurrency())).stream()
                    .map(State::new).collect(Collectors.toList());
            join(CompletableFuture.allOf(group.stream().map(State::start).toArray(CompletableFuture[]::new)), deadline);
            while (group.stream().anyMatch(s -> s.finish == null)) {
                List<State> live = group.stream().filter(s -> s.finish == null).toList();
                join(CompletableFuture.allOf(live.stream().map(State::generate).toArray(CompletableFuture[]::new)), deadline);
                List<State> waiting = live.stream().filter(s -> s.finish == null).toList();
                join(CompletableFuture.allOf(waiting.stream().map(State::observe).toArray(CompletableFuture[]::new)), deadline);
            }
            join(CompletableFuture.allOf(group.stream().map(State::score).toArray(CompletableFuture[]::new)), deadline);
            group.forEach(s -> out.add(s.episode()));
        }
        return out;
    }

    /** One episode, moving on as soon as each of its own calls returns. */
    public CompletableFuture<Episode> episode(String question) {
        State s = new State(question);
        return s.start().thenCompose(x -> s.loop()).thenCompose(x -> s.score()).thenApply(x -> s.episode())
                .exceptionally(t -> s.failed(t).episode());
    }

    /** An episode in progress. Only one of its steps runs at a time, so it needs no locking. */
    private final class State {
        final String question;
        int[] promptIds = new int[0];
        final IntArray ids = new IntArray(), mask = new IntArray();
        final List<Float> logprobs = new ArrayList<>();
        final List<String> versions = new ArrayList<>();
        int turns, toolCalls, toolFailures;
        String finish, finalText = "", error;
        double reward;
        List<ToolCall> pending = List.of();

        State(String question) {
            this.question = question;
        }

        CompletableFuture<Void> start() {
            // the first prompt is the served model's chat template's, as /v1/chat/completions renders it
            return server.tokenizeChatAsync(List.of(ChatFormat.user(question)), env.tools()).thenAccept(p -> promptIds = p);
        }

        CompletableFuture<Void> loop() {
            return generate().thenCompose(x -> finish != null ? CompletableFuture.completedFuture(null)
                    : observe().thenCompose(y -> finish != null ? CompletableFuture.completedFuture(null) : loop()));
        }

        /** One assistant turn; sets {@code finish} when it is the last. */
        CompletableFuture<Void> generate() {
            int room = options.maxContextTokens() - promptIds.length - ids.size();
            Sampling s = options.sampling();
            int max = Math.min(s.maxNewTokens(), room);
            if (max < 1) {
                finish = Episode.LENGTH;
                return CompletableFuture.completedFuture(null);
            }
            Sampling turn = new Sampling(max, s.temperature(), s.topP(), s.topK(), s.seed() == null ? null : s.seed() + turns, false);
            return server.generateAsync(context(), turn).thenAccept(this::apply).exceptionally(t -> {
                failed(t);
                return null;
            });
        }

        void apply(Generation g) {
            turns++;
            versions.add(g.weightVersion());
            for (int i = 0; i < g.outputIds().length; i++) {
                ids.add(g.outputIds()[i]);
                mask.add(1);
                logprobs.add(i < g.outputLogprobs().length ? g.outputLogprobs()[i] : 0f);
            }
            finalText = g.text() == null ? "" : g.text();
            pending = ChatFormat.toolCalls(finalText);
            if (!"stop".equals(g.finishReason())) finish = Episode.LENGTH;  // cut off mid-turn
            else if (pending.isEmpty()) finish = Episode.ANSWERED;
            else if (turns >= options.maxTurns()) finish = Episode.TURN_LIMIT;
        }

        /** The environment's answers to this turn's calls, appended as the next user turn. */
        CompletableFuture<Void> observe() {
            toolCalls += pending.size();
            List<CompletableFuture<ToolResult>> answers = pending.stream().map(env::call).toList();
            return CompletableFuture.allOf(answers.toArray(CompletableFuture[]::new))
                    .thenCompose(x -> {
                        List<ToolResult> results = answers.stream().map(CompletableFuture::join).toList();
                        toolFailures += (int) results.stream().filter(ToolResult::failed).count();
                        return server.tokenizeAsync(ChatFormat.toolResponses(results.stream().map(ToolResult::content).toList()));
                    })
                    .thenAccept(envIds -> {
                        for (int id : envIds) {
                            ids.add(id);
                            mask.add(0);
                            logprobs.add(0f);
                        }
                    })
                    .exceptionally(t -> {
                        failed(t);
                        return null;
                    });
        }

        CompletableFuture<Void> score() {
            if (!Episode.ANSWERED.equals(finish)) return CompletableFuture.completedFuture(null);
            return env.reward(question, finalText).thenAccept(r -> reward = r).exceptionally(t -> {
                failed(t);
                return null;
            });
        }

        int[] context() {
            int[] c = Arrays.copyOf(promptIds, promptIds.length + ids.size());
            System.arraycopy(ids.toArray(), 0, c, promptIds.length, ids.size());
            return c;
        }

        State failed(Throwable t) {
            Throwable c = t;
            while (c.getCause() != null && (c instanceof java.util.concurrent.CompletionException || c instanceof ExecutionException))
                c = c.getCause();
            finish = Episode.ERROR;
            error = c.getMessage() != null ? c.getMessage() : c.toString();
            return this;
        }

        Episode episode() {
            float[] lp = new float[logprobs.size()];
            for (int i = 0; i < lp.length; i++) lp[i] = logprobs.get(i);
            return new Episode(question, promptIds, ids.toArray(), mask.toArray(), lp, reward, List.copyOf(versions), turns,
                    toolCalls, toolFailures, finish, finalText, error);
        }
    }

    private List<Episode> await(CompletableFuture<?> all, List<CompletableFuture<Episode>> each) {
        join(all, System.nanoTime() + options.deadline().toNanos());
        return each.stream().map(CompletableFuture::join).toList();
    }

    private static void join(CompletableFuture<?> f, long deadlineNanos) {
        try {
            f.get(Math.max(0, deadlineNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new IllegalStateException("the agent loop did not finish within its deadline", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    /** A growable int array: episodes append a token at a time. */
    private static final class IntArray {
        private int[] a = new int[64];
        private int n;

        void add(int v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2);
            a[n++] = v;
        }

        int size() {
            return n;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
