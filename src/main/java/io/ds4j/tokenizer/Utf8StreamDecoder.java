package io.ds4j.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Holds back the trailing bytes of a UTF-8 sequence that later tokens may complete, so a multi-byte
 * character split across tokens is never emitted as two broken halves. It only cuts in front of a
 * byte that is not a continuation byte; decoding is then the same as decoding everything at once.
 */
final class Utf8StreamDecoder implements StreamDecoder {
    private final Tokenizer tokenizer;
    private byte[] buf = new byte[16];
    private int n;

    Utf8StreamDecoder(Tokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    @Override
    public String push(int id) {
        byte[] b = tokenizer.bytesOf(id);
        if (n + b.length > buf.length) buf = Arrays.copyOf(buf, Math.max(buf.length * 2, n + b.length));
        System.arraycopy(b, 0, buf, n, b.length);
        n += b.length;
        int cut = completePrefix(buf, n);
        if (cut == 0) return "";
        String s = new String(buf, 0, cut, StandardCharsets.UTF_8);
        System.arraycopy(buf, cut, buf, 0, n - cut);
        n -= cut;
        return s;
    }

    @Override
    public String flush() {
        String s = new String(buf, 0, n, StandardCharsets.UTF_8);
        n = 0;
        return s;
    }

    /** Length of the prefix that can be decoded now. */
    static int completePrefix(byte[] b, int n) {
        // the last byte that starts something (ASCII or a lead byte), within a possible sequence
        for (int back = 1; back <= 4 && back <= n; back++) {
            int i = n - back;
            int v = b[i] & 0xFF;
            if ((v & 0xC0) == 0x80) continue; // continuation byte
            int need = v >= 0xF0 && v <= 0xF4 ? 4 : v >= 0xE0 && v <= 0xEF ? 3 : v >= 0xC2 && v <= 0xDF ? 2 : 1;
            if (back < need && validSoFar(b, i, n)) return i; // incomplete but may still complete
            return n;
        }
        return n; // only stray continuation bytes at the end: nothing can complete them
    }

    /** Whether the bytes after the lead byte at i are allowed second bytes (no overlong/surrogate). */
    private static boolean validSoFar(byte[] b, int i, int n) {
        if (i + 1 >= n) return true;
        int lead = b[i] & 0xFF, second = b[i + 1] & 0xFF;
        int lo = 0x80, hi = 0xBF;
        if (lead == 0xE0) lo = 0xA0;
        else if (lead == 0xED) hi = 0x9F;
        else if (lead == 0xF0) lo = 0x90;
        else if (lead == 0xF4) hi = 0x8F;
        return second >= lo && second <= hi;
    }
}
