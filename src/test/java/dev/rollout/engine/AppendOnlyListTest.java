package dev.rollout.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** A prefix handed out stays as it was while the list grows past its arrays, and cannot be changed. */
class AppendOnlyListTest {

    @Test
    void prefixesStayAsTheyWereWhileTheListGrows() {
        AppendOnlyList<Integer> list = new AppendOnlyList<>();
        List<List<Integer>> prefixes = new ArrayList<>();
        List<Integer> expected = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            if (i % 7 == 0) list.addAll(List.of(-i, -i - 1, -i - 2));   // addAll across a full array too
            else list.add(i);
            prefixes.add(list.prefix());
        }
        // every prefix equals what the list held when it was taken, though the array was replaced since
        for (List<Integer> p : prefixes) {
            expected.clear();
            for (int i = 0, n = 0; n < p.size(); i++) {
                if (i % 7 == 0) {
                    expected.addAll(List.of(-i, -i - 1, -i - 2));
                    n += 3;
                } else {
                    expected.add(i);
                    n++;
                }
            }
            assertEquals(expected, p);
        }
        assertEquals(list.size(), prefixes.get(prefixes.size() - 1).size());
        assertEquals(List.of(), new AppendOnlyList<Integer>().prefix());
    }

    @Test
    void aPrefixIsImmutableAndBounded() {
        AppendOnlyList<String> list = new AppendOnlyList<>();
        list.add("a");
        list.add("b");
        List<String> p = list.prefix();
        list.add("c");
        assertEquals(List.of("a", "b"), p);
        assertThrows(IndexOutOfBoundsException.class, () -> p.get(2), "the element added after it is not part of it");
        assertThrows(UnsupportedOperationException.class, () -> p.set(0, "x"));
        assertThrows(UnsupportedOperationException.class, () -> p.add("x"));
    }
}
