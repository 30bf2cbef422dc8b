package it.dev.rollout.sglang;

import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * Port of SGLang's {@code test/registered/scheduler/test_scheduler_control.py} (sgl-project/sglang
 * at 00e86683f4d77778c6592eb8b5bc5b457b8cd440), one nested class per SGLang class. Most of its
 * classes repeat {@code test_abort.py}'s and run the same checks ({@link SglangAbortIT}, whose
 * javadoc maps SGLang's settings to ours); {@code TestSchedulerControl} adds pausing in place
 * ({@link PauseGenerationKit}) to abort-all and the duplicate-rid cases, on the build's IT server.
 */
class SglangSchedulerControlIT {
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbort {
        @Test
        void testMemoryLeak() throws Exception {
            SglangAbortIT.memoryLeakAfterClientsGoAway(TestServer.shared());
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithApiKey {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("api-key-small-kv", SglangAbortIT.API_KEY_SMALL_KV);
        }

        @Test
        void testMemoryLeakWithApiKey() throws Exception {
            SglangAbortIT.memoryLeakAfterClientsGoAway(server);
        }
    }

    /** SGLang runs it with --max-running-requests 8; the IT server's 256 hold that and more. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestSchedulerControl implements AbortTimeoutKit.AbortAll, PauseGenerationKit.PauseResumeInPlace, DuplicateRidKit {
        final TestServer server = TestServer.shared();

        @Override
        public TestServer server() {
            return server;
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortAllWithRetraction {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("api-key-small-kv", SglangAbortIT.API_KEY_SMALL_KV);
        }

        @Test
        void testAbortAllWithRetraction() throws Exception {
            SglangAbortIT.abortAllWithRetraction(server);
        }
    }

    /** SGLang's class sets SGLANG_REQ_WAITING_TIMEOUT and inherits the kit's test. */
    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithWaitingTimeout implements AbortTimeoutKit.WaitingTimeout {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("waiting-timeout-503", SglangAbortIT.waitingTimeout(503));
        }

        @Override
        public TestServer server() {
            return server;
        }

        @Override
        public int waitingTimeoutMaxNewTokens() {
            return SglangAbortIT.WAITING_TIMEOUT_MAX_NEW_TOKENS;
        }
    }

    @Nested
    @TestInstance(TestInstance.Lifecycle.PER_CLASS)
    class TestAbortWithRunningTimeout {
        TestServer server;

        @BeforeAll
        void launch() throws Exception {
            server = TestServer.launched("running-timeout", Map.of("ROLLOUT_RUNNING_TIMEOUT_SECONDS", "0.001"));
        }

        @Test
        void testRunningTimeout() {
            SglangAbortIT.runningTimeout(server);
        }
    }
}
