package io.ds4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * The inputs of {@link TokenizerBenchmark} are what its MB/s claims assume: exactly {@link
 * BenchText#BYTES} bytes, deterministic, tokenizable with an exact round trip, English-like (bytes
 * per token) or, for the cold-cache texts, made of words that practically never repeat. JMH itself is
 * never run here.
 */
class BenchTextTest {
    private static final Tokenizer TOK = TestTokenizers.real();

    @Test
    void proseIsOneMegabyteDeterministicAndRoundTrips() {
        String text = BenchText.prose(TokenizerBenchmark.PROSE_SEED);
        assertEquals(BenchText.BYTES, text.getBytes(StandardCharsets.UTF_8).length);
        assertEquals(text, BenchText.prose(TokenizerBenchmark.PROSE_SEED));
        int[] ids = TOK.encode(text);
        assertEquals(text, TOK.decode(ids));
        // English with this vocabulary runs about 4 to 5 bytes per token; random bytes would be ~1-2
        double bytesPerToken = (double) BenchText.BYTES / ids.length;
        assertTrue(bytesPerToken > 3.5 && bytesPerToken < 6.5, "bytes/token " + bytesPerToken);
        // varied: many distinct words, and a few non-ASCII characters
        Set<String> words = new HashSet<>(Arrays.asList(text.split("[\\s,.!?\"]+")));
        assertTrue(words.size() > 500, "distinct words " + words.size());
        assertTrue(text.contains("\u2014") && text.contains("\n\n"));
    }

    @Test
    void coldCacheTextsAreNewWordsAndRoundTrip() {
        // two of the eight texts (same generator, other seeds), to keep the suite fast
        String a = BenchText.pseudoWords(100), b = BenchText.pseudoWords(101);
        for (String text : new String[] {a, b}) {
            assertEquals(BenchText.BYTES, text.length());
            assertEquals(BenchText.BYTES, text.getBytes(StandardCharsets.UTF_8).length);
        }
        assertEquals(a, BenchText.pseudoWords(100));
        int[] ids = TOK.encode(a);
        assertEquals(a, TOK.decode(ids));
        assertArrayEquals(ids, TOK.encode(a));
        // "every word is new": at most 1% of the words of both texts together are repeats
        Set<String> all = new HashSet<>();
        long total = 0;
        for (String text : new String[] {a, b}) {
            for (String w : text.split("[ ,.]+")) {
                all.add(w);
                total++;
            }
        }
        assertTrue(all.size() >= 0.99 * total, all.size() + " distinct of " + total);
    }
}
