package io.ds4j.tokenizer;

import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The DeepSeek V3/V4 pre-tokenizer (chat-format.md 1.2): three regex splits with "Isolated" behaviour,
 * each applied to every piece the previous one produced. Compiled with UNICODE_CHARACTER_CLASS so that
 * {@code \s} is Unicode White_Space like Oniguruma's (NEL is whitespace, BOM is not), which is what the
 * reference (HF tokenizers, Rust) does; without the flag Java differs on three probe strings.
 *
 * A split only sees its own piece: matching uses opaque region bounds, so the look-ahead of
 * {@code \s+(?!\S)} treats the end of a piece as the end of input, as a per-piece split does.
 */
final class PreTokenizer {
    static final String DIGITS = "\\p{N}{1,3}";
    static final String CJK = "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+";
    static final String WORDS = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+"
            + "|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
            + "| ?[\\p{P}\\p{S}]+[\r\n]*"
            + "|\\s*[\r\n]+"
            + "|\\s+(?!\\S)"
            + "|\\s+";

    private static final Pattern P_DIGITS = Pattern.compile(DIGITS, Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern P_CJK = Pattern.compile(CJK, Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern P_WORDS = Pattern.compile(WORDS, Pattern.UNICODE_CHARACTER_CLASS);

    /** Receives pieces as [start, end) ranges of the input. */
    interface PieceSink {
        void piece(int start, int end);
    }

    private final Matcher digits;
    private final Matcher cjk;
    private final Matcher words;
    private final PieceSink sink;

    /** One instance per input string (matchers are stateful). */
    PreTokenizer(CharSequence input, PieceSink sink) {
        this.digits = P_DIGITS.matcher(input);
        this.cjk = P_CJK.matcher(input);
        this.words = P_WORDS.matcher(input);
        this.sink = sink;
    }

    void split(int start, int end) {
        if (start >= end) return;
        splitWith(digits, start, end, 0);
    }

    private void splitWith(Matcher m, int start, int end, int level) {
        m.region(start, end);
        int pos = start;
        while (m.find()) {
            int ms = m.start(), me = m.end();
            if (ms > pos) next(pos, ms, level);
            next(ms, me, level);
            pos = me;
        }
        if (pos < end) next(pos, end, level);
    }

    private void next(int start, int end, int level) {
        switch (level) {
            case 0 -> splitWith(cjk, start, end, 1);
            case 1 -> splitWith(words, start, end, 2);
            default -> sink.piece(start, end);
        }
    }
}
