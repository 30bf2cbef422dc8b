package dev.rollout.bench;

import dev.rollout.TempDirs;
import dev.rollout.model.RandomCheckpoint;
import dev.rollout.model.Safetensors;
import dev.rollout.runtime.DefaultModel;
import dev.rollout.safetensors.SafetensorsWriter;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The tool-calling test model (src/test/resources/agent/tool-model.safetensors, trained by
 * tools/agent/train_tool_model.py) expanded into a full checkpoint of the default model's shape:
 * its layers as trained, its embedding rows where the training put them, every other row zero
 * (which is how it was trained; see the script). The servers of the ITs run the default model, so
 * the agent tests and AgentBench load this one into them with update_weights_from_disk.
 */
public final class ToolModel {
    private static final String FIXTURE = "/agent/tool-model.safetensors";

    private ToolModel() {}

    /** A temporary directory holding the full checkpoint, deleted when the JVM exits. */
    public static Path materialize() throws IOException {
        Path dir = TempDirs.deletedAtExit("rollout-tool-model-");
        Path compact = dir.resolve("compact.safetensors");
        try (InputStream in = ToolModel.class.getResourceAsStream(FIXTURE)) {
            if (in == null) throw new IOException("missing test resource " + FIXTURE);
            Files.copy(in, compact, StandardCopyOption.REPLACE_EXISTING);
        }
        Map<String, Safetensors.Entry> header = Safetensors.readHeader(compact);
        int hidden = DefaultModel.SPEC.hiddenSize(), vocab = DefaultModel.SPEC.vocabSize();
        ByteBuffer rows = Safetensors.map(header.get("rollout.embed_rows")).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer ids = Safetensors.map(header.get("rollout.embed_row_ids")).order(ByteOrder.LITTLE_ENDIAN);
        ByteBuffer embed = ByteBuffer.allocate(2 * vocab * hidden).order(ByteOrder.LITTLE_ENDIAN);  // (vocab, hidden) bf16, zeros
        for (int r = 0; ids.remaining() >= 4; r++) {
            int id = ids.getInt();
            for (int j = 0; j < hidden; j++) embed.putShort((id * hidden + j) * 2, rows.getShort((r * hidden + j) * 2));
        }
        Map<String, SafetensorsWriter.Tensor> t = new LinkedHashMap<>();
        t.put("model.embed_tokens.weight", new SafetensorsWriter.Tensor("BF16", new long[] {vocab, hidden}, embed));
        for (var e : header.entrySet())
            if (!e.getKey().startsWith("rollout."))
                t.put(e.getKey(), new SafetensorsWriter.Tensor(e.getValue().dtype(), e.getValue().shape(), Safetensors.map(e.getValue())));
        RandomCheckpoint.writeConfig(dir, DefaultModel.SPEC);
        Safetensors.write(dir.resolve("model.safetensors"), t, Map.of("format", "pt"));
        Files.delete(compact);
        return dir;
    }
}
