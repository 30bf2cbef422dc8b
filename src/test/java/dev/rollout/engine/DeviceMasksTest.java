package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.rollout.constrain.TokenIndex;
import dev.rollout.constrain.TokenMask;
import dev.rollout.model.Torch;
import java.util.ArrayList;
import java.util.List;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch.ScalarType;
import org.junit.jupiter.api.Test;

/**
 * The sampler's copies of constraint masks (on CPU libtorch here; the same ops on the device):
 * each mask is copied once, a step of masks already there copies none, a full table starts over
 * without changing what any step gets, and a row's extra ids are its own.
 */
class DeviceMasksTest {
    /** Every state's mask of a regex over ConstrainedSamplerTest's 70-id vocabulary: a dozen masks, some alike in bits. */
    static List<TokenMask> masks() {
        TokenIndex index = ConstrainedSamplerTest.regex("\\{(a|b|x){0,3}\\}c?|ab{1,4}");
        List<TokenMask> all = new ArrayList<>();
        for (int s = 0; s < index.dfa().states(); s++) all.add(index.mask(s));
        all.add(index.none());
        return all;
    }

    @Test
    void eachMaskIsCopiedOnceAndStepsGetTheirRowsBits() {
        List<TokenMask> masks = masks();
        DeviceMasks device = new DeviceMasks(ConstrainedSamplerTest.CPU);
        TokenMask[] step = masks.toArray(new TokenMask[0]);
        check(device, step, new int[step.length][]);
        assertEquals(step.length, device.copies());
        // the same masks again, reversed and twice over: nothing copied
        TokenMask[] again = new TokenMask[2 * step.length];
        for (int j = 0; j < again.length; j++) again[j] = step[step.length - 1 - j % step.length];
        check(device, again, new int[again.length][]);
        assertEquals(step.length, device.copies(), "a step whose masks are all on the device copies none");
    }

    @Test
    void aFullTableStartsOverAndEveryStepStillGetsItsMasks() {
        List<TokenMask> masks = masks();
        int n = masks.size();
        assertTrue(n >= 8, "masks: " + n);
        // room for 4 masks of 2 words: steps of 3 then fill it, and the fourth step starts over
        DeviceMasks device = new DeviceMasks(ConstrainedSamplerTest.CPU, 4 * 2 * 8);
        for (int start = 0; start + 3 <= n; start += 3) {
            TokenMask[] step = masks.subList(start, start + 3).toArray(new TokenMask[0]);
            check(device, step, new int[3][]);
            assertTrue(device.used() <= Math.max(4, 3), "rows in use: " + device.used());
        }
        // a step larger than the budget gets a table its size
        TokenMask[] all = masks.toArray(new TokenMask[0]);
        check(device, all, new int[n][]);
        assertEquals(n, device.used());
    }

    @Test
    void aRowsExtraIdsAreAllowedInThatRowAloneAndKeptWithTheMask() {
        List<TokenMask> masks = masks();
        DeviceMasks device = new DeviceMasks(ConstrainedSamplerTest.CPU);
        TokenMask m = masks.get(0);
        int[][] extra = {{ConstrainedSamplerTest.STOP, 69}, null, null};
        check(device, new TokenMask[] {m, m, m}, extra);
        long copies = device.copies();
        check(device, new TokenMask[] {m, m, m}, extra);
        assertEquals(copies, device.copies(), "the mask with its extra ids is kept as the plain mask is");
        check(device, new TokenMask[] {m, m}, new int[][] {{ConstrainedSamplerTest.STOP}, null});
        assertEquals(copies + 1, device.copies(), "other extra ids: a row of their own");
    }

    /** forbidden() against each mask's own bits, id by id. */
    private static void check(DeviceMasks device, TokenMask[] step, int[][] extra) {
        int v = ConstrainedSamplerTest.V;
        Tensor f = device.forbidden(step, extra, step.length, v);
        assertEquals(List.of((long) step.length, (long) v), List.of(f.size(0), f.size(1)));
        float[] got = Torch.toFloats(f.to(ScalarType.Float));
        for (int j = 0; j < step.length; j++) {
            for (int t = 0; t < v; t++) {
                boolean allowed = step[j].allows(t);
                if (extra[j] != null) for (int e : extra[j]) allowed |= e == t;
                assertEquals(allowed ? 0f : 1f, got[j * v + t], "row " + j + ", id " + t);
            }
        }
    }
}
