package dev.rollout.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.json.Json;
import jakarta.json.JsonValue;
import java.io.StringReader;
import java.time.Duration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Typed reads of request fields: every bad value is a 400 naming the field, fast, never an exception of the JDK's. */
class FieldsTest {
    static JsonValue json(String v) {
        return Json.createReader(new StringReader("[" + v + "]")).readArray().get(0);
    }

    static String refused(Runnable r) {
        ApiException e = assertThrows(ApiException.class, r::run);
        assertEquals(400, e.status());
        return e.getMessage();
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
        1e999999999              | out of range
        -1e999999999             | out of range
        1e-999999999             | must be an integer
        0.5                      | must be an integer
        1.5                      | must be an integer
        123456789012345678901234 | out of range
        9223372036854775808      | out of range
        "7"                      | must be an integer
        """)
    void integersRefuseWhatIsNotALongQuickly(String value, String says) {
        String m = assertTimeoutPreemptively(Duration.ofSeconds(2), () -> refused(() -> Fields.integer(json(value), "max_new_tokens")));
        assertTrue(m.startsWith("max_new_tokens") && m.contains(says), m);
    }

    @ParameterizedTest
    @CsvSource({"1.5e3, 1500", "1.0, 1", "-0, 0", "0e999999999, 0", "9223372036854775807, 9223372036854775807"})
    void integersInAnySpellingAreRead(String value, long expected) {
        assertEquals(expected, Fields.integer(json(value), "x"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"1e12", "-1", "0", "86400.5", "1e999999999", "\"600\""})
    void secondsOutOfRangeAreA400(String value) {
        String m = refused(() -> Fields.seconds(json(value), "timeout_s", 0.001, 86_400));
        assertTrue(m.startsWith("timeout_s"), m);
    }

    @ParameterizedTest
    @CsvSource({"0.3, 300", "600, 600000", "86400, 86400000"})
    void secondsAreMilliseconds(String value, long millis) {
        assertEquals(Duration.ofMillis(millis), Fields.seconds(json(value), "timeout_s", 0.001, 86_400));
    }

    @ParameterizedTest
    @ValueSource(strings = {"\"/tmp/a\\u0000b\"", "\"\\u0000\""})
    void aPathWithANulByteIsA400(String value) {
        assertTrue(refused(() -> Fields.path(json(value), "model_path")).startsWith("model_path is not a valid path"));
    }
}
