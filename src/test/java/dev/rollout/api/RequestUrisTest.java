package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Which raw query strings RESTEasy would fail on (java.net.URI), refused up front. */
class RequestUrisTest {
    @ParameterizedTest
    @ValueSource(strings = {"%%%", "bucket_seq=%zz", "a=100%", "x=%4", "q=\"quoted\"", "a b=c", "a=<b>", "x=%"})
    void malformed(String query) {
        assertNotNull(RequestUris.problem("/generate", query), query);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "weight_version=step-1&bucket_seq=3", "name=model.norm.weight", "x=%41%e2%82%ac", "a=&b", "q=a+b"})
    void wellFormed(String query) {
        assertNull(RequestUris.problem("/update_weights_from_tensor", query), query);
    }
}
