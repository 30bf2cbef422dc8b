package dev.rollout.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.engine.LogprobsMode;
import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.Properties;
import org.eclipse.microprofile.config.Config;
import org.eclipse.microprofile.config.ConfigValue;
import org.eclipse.microprofile.config.spi.ConfigSource;
import org.eclipse.microprofile.config.spi.Converter;
import org.junit.jupiter.api.Test;

/**
 * The settings as the server reads them: the shipped defaults of microprofile-config.properties,
 * under the values an operator sets (a system property or environment variable in the server; a
 * map here, so that the test needs no Liberty).
 */
class SettingsReaderTest {
    /** The shipped defaults with {@code overrides} on top, as MicroProfile Config layers them. */
    static ServerSettings read(Map<String, String> overrides) throws IOException {
        Properties defaults = new Properties();
        try (InputStream in = SettingsReaderTest.class.getResourceAsStream("/META-INF/microprofile-config.properties")) {
            defaults.load(in);
        }
        Map<String, String> values = new HashMap<>();
        defaults.forEach((k, v) -> values.put((String) k, (String) v));
        values.putAll(overrides);
        return SettingsReader.read(new MapConfig(values));
    }

    /**
     * SGLang's --enable-memory-saver defaults to false, and slime expects exactly its
     * --offload-rollout (false unless colocated): the default must be false, and
     * ROLLOUT_ENABLE_MEMORY_SAVER=true (a colocated slime) must reach the settings.
     */
    @Test
    void enableMemorySaverIsFalseUnlessDeclared() throws IOException {
        assertFalse(read(Map.of()).enableMemorySaver());
        assertTrue(read(Map.of("rollout.enable-memory-saver", "true")).enableMemorySaver());
    }

    @Test
    void dtypeIsKeptInSglangsSpelling() throws IOException {
        assertEquals("auto", read(Map.of()).engine().dtype());
        assertEquals("float16", read(Map.of("rollout.dtype", "float16")).engine().dtype());
    }

    /** SGLang's numbers unless the operator asks for a vLLM mode; a misspelt one stops the start, naming the modes. */
    @Test
    void logprobsModeIsSglangsUnlessSetAndAnUnknownOneStopsTheStart() throws IOException {
        assertEquals(LogprobsMode.SGLANG, read(Map.of()).logprobsMode());
        assertEquals(LogprobsMode.PROCESSED_LOGPROBS, read(Map.of("rollout.logprobs-mode", "processed_logprobs")).logprobsMode());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> read(Map.of("rollout.logprobs-mode", "processed")));
        assertEquals("rollout.logprobs-mode must be one of sglang, raw_logprobs, raw_logits, processed_logits, processed_logprobs, "
                + "not 'processed'", e.getMessage());
    }

    /** vLLM's and SGLang's default (auto enforced only for strict tools) unless set, by vLLM's names or SGLang's numbers. */
    @Test
    void toolStrictLevelIsAutoUnlessSetAndAnUnknownOneStopsTheStart() throws IOException {
        assertEquals(ServerSettings.ToolStrictLevel.AUTO, read(Map.of()).toolStrictLevel());
        assertEquals(ServerSettings.ToolStrictLevel.FUNCTION, read(Map.of("rollout.tool-strict-level", "function")).toolStrictLevel());
        assertEquals(ServerSettings.ToolStrictLevel.PARAMETER, read(Map.of("rollout.tool-strict-level", "2")).toolStrictLevel());
        assertEquals(ServerSettings.ToolStrictLevel.AUTO, read(Map.of("rollout.tool-strict-level", " OFF ")).toolStrictLevel());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> read(Map.of("rollout.tool-strict-level", "strict")));
        assertTrue(e.getMessage().startsWith("rollout.tool-strict-level must be auto, function or parameter"), e.getMessage());
    }

    /** Just enough of MicroProfile Config over a map: the reader asks only for values and optional values. */
    private record MapConfig(Map<String, String> values) implements Config {
        @Override
        public <T> T getValue(String name, Class<T> type) {
            return getOptionalValue(name, type).orElseThrow(() -> new NoSuchElementException(name));
        }

        @Override
        public <T> Optional<T> getOptionalValue(String name, Class<T> type) {
            String v = values.get(name);
            if (v == null || v.isEmpty()) return Optional.empty();  // MicroProfile Config reads an empty value as absent
            Object o = type == String.class ? v : type == Integer.class ? Integer.valueOf(v) : type == Long.class ? Long.valueOf(v)
                    : type == Double.class ? Double.valueOf(v) : type == Boolean.class ? Boolean.valueOf(v) : null;
            if (o == null) throw new IllegalArgumentException("no converter for " + type);
            return Optional.of(type.cast(o));
        }

        @Override
        public ConfigValue getConfigValue(String name) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Iterable<String> getPropertyNames() {
            return values.keySet();
        }

        @Override
        public Iterable<ConfigSource> getConfigSources() {
            return List.of();
        }

        @Override
        public <T> Optional<Converter<T>> getConverter(Class<T> type) {
            return Optional.empty();
        }

        @Override
        public <T> T unwrap(Class<T> type) {
            throw new UnsupportedOperationException();
        }
    }
}
