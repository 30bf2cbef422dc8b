import dev.rollout.model.Torch;
import java.util.Arrays;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;

/**
 * What libtorch's CPU allocations cost with and without transparent huge pages
 * (THP_MEM_ALLOC_ENABLE, docs/operations.md, Memory): a fresh (256, 151,936) float32 tensor, the
 * logits of a 256-token prompt slice at Qwen's vocabulary (155 MB), allocated and filled, ROUNDS
 * times; the median and the fastest. Each large tensor is a fresh mapping, so each fill takes a
 * page fault per page: 4 KiB pages without THP, 2 MiB with it.
 *
 *   war=target/rollout-server/WEB-INF; cp="$war/classes:$(ls $war/lib/*.jar | tr '\n' :)"
 *   java -cp "$cp" bench/ThpAlloc.java [ROUNDS]                              # default 4 KiB pages
 *   THP_MEM_ALLOC_ENABLE=1 java -cp "$cp" bench/ThpAlloc.java [ROUNDS]       # as server.env sets it
 */
public final class ThpAlloc {
    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        double[] ms = new double[rounds];
        for (int r = 0; r < rounds; r++) {
            long t0 = System.nanoTime();
            Tensor t = Torch.empty(Torch.options(ScalarType.Float), 256, 151_936);   // (256, V) float32, 155 MB
            t.fill_(new Scalar(1.0));
            ms[r] = (System.nanoTime() - t0) / 1e6;
            t.close();
        }
        double[] sorted = ms.clone();
        Arrays.sort(sorted);
        System.out.printf("RESULT {\"what\": \"thp_alloc\", \"thp\": \"%s\", \"rounds\": %d, \"ms_median\": %.1f, \"ms_min\": %.1f}%n",
                System.getenv().getOrDefault("THP_MEM_ALLOC_ENABLE", "unset"), rounds, sorted[rounds / 2], sorted[0]);
    }
}
