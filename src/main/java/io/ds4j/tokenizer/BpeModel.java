package io.ds4j.tokenizer;

import java.util.Arrays;

/**
 * Byte-level BPE over token ids (chat-format.md 1.5). A merge "a b" is stored as the id pair (a, b) ->
 * (rank, id of "ab"); every merge result is a vocabulary entry, so merging works on ids and never
 * builds strings. Per piece: repeatedly merge the adjacent pair with the lowest rank, leftmost first.
 * Short pieces use a plain scan; long ones (whitespace runs, long words) a heap over a linked list so
 * that a pathological input stays O(n log n).
 */
final class BpeModel {
    private static final int LONG_PIECE = 64;

    // open addressing over one array of (key, value) pairs so that a probe touches one cache line:
    // key = left << 32 | right (-1 = empty), value = rank << 32 | merged id
    private final long[] table;
    private final int mask;
    /** Token id of each single byte's symbol. */
    final int[] byteIds;

    BpeModel(int[] byteIds, int[] left, int[] right, int[] merged) {
        this.byteIds = byteIds;
        int n = left.length;
        int cap = Integer.highestOneBit(Math.max(16, n * 2)) << 1;
        table = new long[cap * 2];
        for (int i = 0; i < cap; i++) table[2 * i] = -1L;
        mask = cap - 1;
        for (int r = 0; r < n; r++) {
            long k = key(left[r], right[r]);
            int slot = slot(k);
            while (table[2 * slot] != -1L && table[2 * slot] != k) slot = (slot + 1) & mask;
            if (table[2 * slot] == k) continue; // duplicate merge line: the first (lowest) rank wins
            table[2 * slot] = k;
            table[2 * slot + 1] = ((long) r << 32) | (merged[r] & 0xFFFFFFFFL);
        }
    }

    private static long key(int a, int b) {
        return ((long) a << 32) | (b & 0xFFFFFFFFL);
    }

    private int slot(long k) {
        long h = k * 0x9E3779B97F4A7C15L;
        return (int) (h >>> 40) & mask;
    }

    /** Slot of the pair, or -1 if (a, b) is not a merge. */
    private int find(int a, int b) {
        long k = key(a, b);
        int s = slot(k);
        while (true) {
            long v = table[2 * s];
            if (v == k) return s;
            if (v == -1L) return -1;
            s = (s + 1) & mask;
        }
    }

    private int rank(int slot) {
        return (int) (table[2 * slot + 1] >>> 32);
    }

    private int result(int slot) {
        return (int) table[2 * slot + 1];
    }

    /** BPE of one piece given as UTF-8 bytes [off, off+len). */
    int[] encode(byte[] bytes, int off, int len) {
        int[] syms = new int[len];
        for (int i = 0; i < len; i++) syms[i] = byteIds[bytes[off + i] & 0xFF];
        if (len < 2) return syms;
        return len <= LONG_PIECE ? mergeShort(syms) : mergeLong(syms);
    }

    /** Both merge strategies on the same piece, for tests: {short scan, heap}. */
    int[][] encodeBothWays(byte[] bytes) {
        int[] a = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) a[i] = byteIds[bytes[i] & 0xFF];
        int[] b = a.clone();
        return new int[][] {bytes.length < 2 ? a : mergeShort(a), bytes.length < 2 ? b : mergeLong(b)};
    }

    /** O(n^2) scan with the pair ranks cached: after a merge only the two neighbouring pairs change. */
    private int[] mergeShort(int[] syms) {
        int n = syms.length;
        int[] slot = new int[n]; // slot[i]: table slot of pair (i, i+1), or -1
        for (int i = 0; i + 1 < n; i++) slot[i] = find(syms[i], syms[i + 1]);
        while (n > 1) {
            int best = Integer.MAX_VALUE, at = -1;
            for (int i = 0; i + 1 < n; i++) {
                int s = slot[i];
                if (s >= 0 && rank(s) < best) {
                    best = rank(s);
                    at = i;
                }
            }
            if (at < 0) break;
            syms[at] = result(slot[at]);
            System.arraycopy(syms, at + 2, syms, at + 1, n - at - 2);
            System.arraycopy(slot, at + 2, slot, at + 1, n - at - 2);
            n--;
            if (at > 0) slot[at - 1] = find(syms[at - 1], syms[at]);
            slot[at] = at + 1 < n ? find(syms[at], syms[at + 1]) : -1;
        }
        return n == syms.length ? syms : Arrays.copyOf(syms, n);
    }

    private int[] mergeLong(int[] sym) {
        int n = sym.length;
        int[] next = new int[n];
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            next[i] = i + 1 < n ? i + 1 : -1;
            prev[i] = i - 1;
        }
        LongHeap heap = new LongHeap(n);
        for (int i = 0; i + 1 < n; i++) pushPair(heap, sym, i, i + 1);
        while (!heap.isEmpty()) {
            long top = heap.pop();
            int rank = (int) (top >>> 32);
            int i = (int) top;
            if (sym[i] < 0) continue;
            int j = next[i];
            if (j < 0) continue;
            int s = find(sym[i], sym[j]);
            if (s < 0 || rank(s) != rank) continue; // stale entry
            sym[i] = result(s);
            sym[j] = -1;
            int k = next[j];
            next[i] = k;
            if (k >= 0) prev[k] = i;
            if (prev[i] >= 0) pushPair(heap, sym, prev[i], i);
            if (k >= 0) pushPair(heap, sym, i, k);
        }
        int count = 0;
        for (int i = 0; i >= 0; i = next[i]) count++;
        int[] out = new int[count];
        int c = 0;
        for (int i = 0; i >= 0; i = next[i]) out[c++] = sym[i];
        return out;
    }

    private void pushPair(LongHeap heap, int[] sym, int i, int j) {
        int s = find(sym[i], sym[j]);
        if (s >= 0) heap.push(((long) rank(s) << 32) | i);
    }

    /** Min-heap of longs (rank << 32 | position: lowest rank, then leftmost). */
    private static final class LongHeap {
        private long[] a;
        private int size;

        LongHeap(int cap) {
            a = new long[Math.max(4, cap)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void push(long v) {
            if (size == a.length) a = Arrays.copyOf(a, size * 2);
            int i = size++;
            while (i > 0) {
                int p = (i - 1) >>> 1;
                if (a[p] <= v) break;
                a[i] = a[p];
                i = p;
            }
            a[i] = v;
        }

        long pop() {
            long top = a[0];
            long v = a[--size];
            int i = 0;
            while (true) {
                int l = 2 * i + 1;
                if (l >= size) break;
                int r = l + 1;
                int m = r < size && a[r] < a[l] ? r : l;
                if (a[m] >= v) break;
                a[i] = a[m];
                i = m;
            }
            a[i] = v;
            return top;
        }
    }
}
