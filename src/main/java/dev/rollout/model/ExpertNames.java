package dev.rollout.model;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorArrayRef;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The two ways Hugging Face names a mixture of experts' weights. Checkpoints on disk, and so the
 * served model's parameters, name each expert ({@code model.layers.L.mlp.experts.E.gate_proj.weight},
 * Mixtral's {@code model.layers.L.block_sparse_moe.experts.E.w1.weight}); transformers 5 holds the
 * experts stacked in memory, so a trainer's {@code state_dict()} names them
 * {@code model.layers.L.mlp.experts.gate_up_proj} (experts, 2 * intermediate, hidden: each
 * expert's gate, then its up) and {@code model.layers.L.mlp.experts.down_proj} (experts, hidden,
 * intermediate), with Mixtral's router as {@code model.layers.L.mlp.gate.weight}. Pushes may use
 * either; {@link #expand} turns stacked names into the parameters' own, and {@link #gather} reads
 * a stacked name back.
 */
public final class ExpertNames {
    private static final Pattern STACKED = Pattern.compile("(model\\.layers\\.\\d+\\.)mlp\\.experts\\.(gate_up_proj|down_proj)");
    private static final Pattern ROUTER = Pattern.compile("(model\\.layers\\.\\d+\\.)mlp\\.gate\\.weight");

    private ExpertNames() {}

    /** How a layer's experts are named among the parameters: its prefix and gate, up, down names, or null if it has none. */
    private record Naming(String experts, String gate, String up, String down) {
        String name(int expert, String which) {
            return experts + expert + "." + which + ".weight";
        }

        /** How many experts the layer has among the parameters. */
        int count(Set<String> params) {
            int n = 0;
            while (params.contains(name(n, down))) n++;
            return n;
        }

        static Naming of(String layer, Set<String> params) {
            if (params.contains(layer + "mlp.experts.0.gate_proj.weight"))
                return new Naming(layer + "mlp.experts.", "gate_proj", "up_proj", "down_proj");
            if (params.contains(layer + "block_sparse_moe.experts.0.w1.weight"))
                return new Naming(layer + "block_sparse_moe.experts.", "w1", "w3", "w2");
            return null;
        }
    }

    /**
     * {@code tensors} with every stacked expert tensor replaced by each expert's slices under the
     * parameters' names (views of it: nothing is copied), and Mixtral's router renamed; every
     * other entry as it was. A stacked name of a layer without experts, or of another shape than
     * (experts, ...), is left for the caller's check to refuse; one that holds another number of
     * experts than the layer throws an IllegalArgumentException naming both.
     */
    public static Map<String, Tensor> expand(Map<String, Tensor> tensors, Set<String> params) {
        boolean any = false;
        for (String name : tensors.keySet()) any |= STACKED.matcher(name).matches() || ROUTER.matcher(name).matches();
        if (!any) return tensors;
        Map<String, Tensor> out = new LinkedHashMap<>();
        List<Tensor> replaced = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            Matcher stacked = STACKED.matcher(name);
            String renamed = parameterName(name, params);
            if (!renamed.equals(name)) {
                out.put(renamed, t);
                continue;
            }
            Naming naming = stacked.matches() ? Naming.of(stacked.group(1), params) : null;
            if (naming == null || t.dim() != 3) {
                out.put(name, t);
                continue;
            }
            int experts = naming.count(params);
            // one expert-parallel rank's experts, say, would otherwise land on experts 0 .. n-1
            if (t.size(0) != experts)
                throw new IllegalArgumentException(name + " holds " + t.size(0) + " experts; the model has " + experts + " in that layer");
            for (int x = 0; x < t.size(0); x++) {
                Tensor expert = t.select(0, x);                                       // (2 * inter, hidden) or (hidden, inter)
                if (stacked.group(2).equals("down_proj")) {
                    out.put(naming.name(x, naming.down()), expert);
                } else {
                    long inter = expert.size(0) / 2;
                    out.put(naming.name(x, naming.gate()), expert.narrow(0, 0, inter));
                    out.put(naming.name(x, naming.up()), expert.narrow(0, inter, inter));
                }
            }
            replaced.add(t);   // its views keep its storage
        }
        replaced.forEach(Tensor::close);
        return out;
    }

    /**
     * The parameter a transformers 5 name stands for where the checkpoint names it otherwise
     * (Mixtral's router, {@code mlp.gate.weight}, is {@code block_sparse_moe.gate.weight}); the name
     * itself otherwise.
     */
    public static String parameterName(String name, Set<String> params) {
        Matcher router = ROUTER.matcher(name);
        if (router.matches() && !params.contains(name) && params.contains(router.group(1) + "block_sparse_moe.gate.weight"))
            return router.group(1) + "block_sparse_moe.gate.weight";
        return name;
    }

    /**
     * A stacked expert tensor put together from each expert's whole parameter ({@code whole} reads
     * one by name), or null when {@code name} is no stacked name of a layer with experts.
     */
    public static Tensor gather(String name, Set<String> params, Function<String, Tensor> whole) {
        Matcher stacked = STACKED.matcher(name);
        if (!stacked.matches()) return null;
        Naming naming = Naming.of(stacked.group(1), params);
        if (naming == null) return null;
        List<Tensor> experts = new ArrayList<>();
        for (int x = 0, n = naming.count(params); x < n; x++) {
            experts.add(stacked.group(2).equals("down_proj") ? whole.apply(naming.name(x, naming.down()))
                    : torch.cat(new TensorArrayRef(new TensorVector(whole.apply(naming.name(x, naming.gate())),
                    whole.apply(naming.name(x, naming.up())))), 0));                  // (2 * inter, hidden)
        }
        return torch.stack(new TensorArrayRef(new TensorVector(experts.toArray(new Tensor[0]))), 0);
    }

    /** The shape of a stacked expert tensor by its name, from the per-expert parameters' shapes; null when it is none. */
    public static List<Long> stackedShape(String name, Map<String, List<Long>> shapes) {
        Matcher stacked = STACKED.matcher(name);
        if (!stacked.matches()) return null;
        Naming naming = Naming.of(stacked.group(1), shapes.keySet());
        if (naming == null) return null;
        long experts = naming.count(shapes.keySet());
        if (stacked.group(2).equals("down_proj")) {
            List<Long> down = shapes.get(naming.name(0, naming.down()));                         // (hidden, inter)
            return List.of(experts, down.get(0), down.get(1));
        }
        List<Long> gate = shapes.get(naming.name(0, naming.gate()));                             // (inter, hidden)
        return List.of(experts, 2 * gate.get(0), gate.get(1));
    }
}
