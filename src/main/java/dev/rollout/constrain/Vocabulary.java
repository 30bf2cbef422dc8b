package dev.rollout.constrain;

import java.util.Arrays;
import java.util.Comparator;

/**
 * A model's tokens as the bytes each adds to the decoded output, with a trie over them so that a
 * constraint walks a shared prefix once: the 151,936 Qwen3 tokens share most of their bytes.
 * Built once per tokenizer and shared by every constraint.
 *
 * <p>A token without bytes (a special token that decodes to nothing, an id past the tokenizer's
 * entries) is never allowed inside constrained text: it would let a sequence run on without
 * progress. The end-of-sequence ids are allowed exactly where the text may end.
 *
 * <p>The trie is stored in preorder as flat arrays: node {@code i} adds byte {@code nodeByte[i]}
 * at depth {@code depth[i]}, its subtree ends before {@code skip[i]}, and the tokens that end at it
 * are {@code tokens[tokensFrom[i] .. tokensFrom[i + 1])}. A walk over it is one pass with jumps.
 */
public final class Vocabulary {
    private final byte[][] tokenBytes;
    private final int size;
    private final int[] eosIds;
    final byte[] nodeByte;
    final int[] depth;
    final int[] skip;
    final int[] tokensFrom;
    final int[] tokens;
    final int maxDepth;

    private Vocabulary(byte[][] tokenBytes, int size, int[] eosIds) {
        this.tokenBytes = tokenBytes;
        this.size = size;
        this.eosIds = eosIds;
        Integer[] order = new Integer[tokenBytes.length];
        int n = 0;
        for (int id = 0; id < tokenBytes.length; id++) if (tokenBytes[id] != null && tokenBytes[id].length > 0) order[n++] = id;
        order = Arrays.copyOf(order, n);
        Arrays.sort(order, Comparator.comparing((Integer id) -> tokenBytes[id], Arrays::compareUnsigned));
        int nodes = 0, longest = 0;
        byte[] prev = new byte[0];
        for (Integer id : order) {
            byte[] b = tokenBytes[id];
            nodes += b.length - commonPrefix(prev, b);
            prev = b;
            longest = Math.max(longest, b.length);
        }
        nodeByte = new byte[nodes];
        depth = new int[nodes];
        skip = new int[nodes];
        tokensFrom = new int[nodes + 1];
        tokens = new int[n];
        maxDepth = longest;
        int[] openAt = new int[longest + 1];  // the node at each depth on the current path
        int node = 0, t = 0;
        prev = new byte[0];
        for (Integer id : order) {
            byte[] b = tokenBytes[id];
            int common = commonPrefix(prev, b);
            for (int d = common + 1; d <= prev.length; d++) skip[openAt[d]] = node;  // subtrees the new path leaves
            for (int d = common + 1; d <= b.length; d++) {
                nodeByte[node] = b[d - 1];
                depth[node] = d;
                openAt[d] = node;
                tokensFrom[node] = t;
                node++;
            }
            tokens[t++] = id;  // ends at the last node on the path, whose range grows to include it
            prev = b;
        }
        for (int d = 1; d <= prev.length; d++) skip[openAt[d]] = nodes;
        tokensFrom[nodes] = t;
        // a node's tokens run up to the next node's first token
        for (int i = nodes - 1; i >= 0; i--) if (tokensFrom[i] > tokensFrom[i + 1]) tokensFrom[i] = tokensFrom[i + 1];
    }

    private static int commonPrefix(byte[] a, byte[] b) {
        int m = Arrays.mismatch(a, b);
        return m < 0 ? a.length : m;
    }

    /**
     * @param tokenBytes each id's bytes in the decoded output, null where the id never appears in constrained text
     * @param size the model's vocabulary size (the logits' width), at least {@code tokenBytes.length}
     * @param eosIds the ids that end a sequence
     */
    public static Vocabulary of(byte[][] tokenBytes, int size, int... eosIds) {
        if (size < tokenBytes.length) throw new IllegalArgumentException("vocabulary size " + size + " < " + tokenBytes.length + " tokens");
        for (int e : eosIds) if (e < 0 || e >= size) throw new IllegalArgumentException("EOS id " + e + " outside the vocabulary");
        byte[][] copy = new byte[tokenBytes.length][];
        for (int i = 0; i < copy.length; i++) copy[i] = tokenBytes[i];
        for (int e : eosIds) if (e < copy.length) copy[e] = null;  // EOS ends the text; it never adds to it
        return new Vocabulary(copy, size, eosIds.clone());
    }

    public int size() {
        return size;
    }

    public int[] eosIds() {
        return eosIds.clone();
    }

    public boolean isEos(int id) {
        for (int e : eosIds) if (e == id) return true;
        return false;
    }

    /** The bytes of a token, or null where it never appears in constrained text. */
    public byte[] bytes(int id) {
        return id >= 0 && id < tokenBytes.length ? tokenBytes[id] : null;
    }

    int nodes() {
        return nodeByte.length;
    }
}
