package io.ds4j.bench;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;

/**
 * Deterministic inputs of the tokenizer benchmark, each exactly {@link #BYTES} bytes of UTF-8 so
 * that JMH can count bytes as operations. Nothing is downloaded: the text is generated here.
 *
 * <ul>
 *   <li>{@link #prose} — English-like prose from a small grammar over a few hundred common words
 *       (skewed towards frequent ones), with names, numbers, dialogue, commas, paragraphs and the
 *       odd em dash or curly apostrophe. Words repeat as in real text, so the tokenizer's piece
 *       cache is as useful as it would be on real English.
 *   <li>{@link #pseudoWords} — pronounceable-looking nonsense words of 5 to 12 letters drawn from
 *       English letter frequencies; practically every word is new, so every piece misses the cache
 *       and the pre-tokenizer plus BPE merge loop is measured alone.
 * </ul>
 */
public final class BenchText {
    /** Size of every benchmark input in UTF-8 bytes (1 MB); a compile-time constant for JMH. */
    public static final int BYTES = 1_000_000;

    private BenchText() {}

    private static final String[] DET = {"the", "the", "the", "a", "a", "this", "that", "every", "no", "some", "his", "her", "their", "our", "its"};
    private static final String[] ADJ = {
        "old", "new", "small", "great", "long", "little", "young", "dark", "cold", "quiet", "strange", "early", "late",
        "bright", "heavy", "narrow", "wide", "empty", "broken", "distant", "golden", "silent", "gentle", "bitter",
        "ancient", "hidden", "careful", "simple", "common", "curious", "proper", "public", "private", "northern",
        "southern", "wooden", "iron", "pale", "green", "grey", "white", "black", "red", "blue", "restless", "patient",
        "foolish", "honest", "wretched", "remarkable", "ordinary", "uncertain", "particular", "considerable",
    };
    private static final String[] NOUN = {
        "man", "woman", "house", "road", "river", "window", "door", "letter", "town", "morning", "evening", "night",
        "child", "father", "mother", "friend", "ship", "garden", "field", "hill", "village", "city", "table", "book",
        "voice", "face", "hand", "heart", "mind", "question", "answer", "story", "reason", "moment", "year", "summer",
        "winter", "storm", "wind", "light", "fire", "stone", "bridge", "church", "market", "horse", "dog", "captain",
        "doctor", "servant", "stranger", "merchant", "soldier", "teacher", "king", "queen", "island", "forest",
        "harbour", "kitchen", "corner", "silence", "journey", "promise", "danger", "fortune", "memory", "truth",
        "paper", "money", "bread", "water", "wine", "coat", "hat", "clock", "lamp", "candle", "picture", "mountain",
        "valley", "coast", "sea", "sky", "cloud", "train", "station", "office", "court", "government", "matter",
        "purpose", "business", "family", "company", "country", "history", "opinion", "difficulty", "experiment",
    };
    private static final String[] VERB = {
        "saw", "found", "took", "left", "kept", "held", "watched", "followed", "crossed", "opened", "closed",
        "remembered", "forgot", "carried", "reached", "passed", "entered", "described", "noticed", "answered",
        "considered", "discovered", "examined", "returned to", "looked at", "spoke of", "thought of", "wrote to",
        "waited for", "asked about", "turned towards", "walked along", "ran across", "sold", "bought", "built",
        "painted", "understood", "believed", "feared", "loved", "admired", "doubted", "mentioned", "explained",
    };
    private static final String[] INTRANS = {
        "laughed", "waited", "slept", "smiled", "hesitated", "trembled", "vanished", "returned", "agreed",
        "sighed", "listened", "wondered", "arrived", "departed", "fell silent", "went on", "stood still", "sat down",
    };
    private static final String[] ADV = {
        "slowly", "quickly", "quietly", "suddenly", "carefully", "at once", "again", "still", "never", "always",
        "often", "perhaps", "certainly", "indeed", "rather", "almost", "nearly", "hardly", "once more", "at last",
    };
    private static final String[] PREP = {
        "in", "on", "at", "near", "behind", "beyond", "under", "over", "across", "through", "along", "towards",
        "beside", "without", "after", "before", "during", "against", "among", "within",
    };
    private static final String[] CONJ = {"and", "and", "but", "but", "or", "so", "for", "yet", "while", "because", "although", "when", "until"};
    private static final String[] PRON = {"he", "she", "they", "we", "I", "you", "it", "nobody", "everyone", "someone"};
    private static final String[] NAME = {
        "Elizabeth", "Mr. Darcy", "Holmes", "Watson", "Captain Ahab", "Mrs. Hudson", "Anne", "Edward", "Margaret",
        "Thomas", "Catherine", "Mr. Bennet", "Lady Russell", "Pip", "Estella", "Jane", "Heathcliff", "Oliver",
    };
    private static final String[] SAID = {"said", "replied", "cried", "whispered", "asked", "answered", "observed", "added"};
    private static final String[] CONTRACTED = {"don't", "couldn't", "wasn't", "I'm", "it's", "wouldn't", "isn't", "we'll", "you've"};
    private static final String[] UNIT = {"miles", "days", "years", "pounds", "feet", "hours", "shillings", "men", "pages"};

    /** English-like prose, exactly {@link #BYTES} bytes of UTF-8 (mostly ASCII). */
    public static String prose(long seed) {
        Gen g = new Gen(seed);
        Sized out = new Sized();
        while (true) {
            StringBuilder para = new StringBuilder();
            int sentences = 3 + g.r.nextInt(6);
            for (int i = 0; i < sentences; i++) {
                if (i > 0) para.append(' ');
                g.sentence(para);
            }
            para.append("\n\n");
            if (!out.append(para.toString())) break;
        }
        return out.fill();
    }

    /** Nonsense words from English letter frequencies, exactly {@link #BYTES} bytes of ASCII. */
    public static String pseudoWords(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Sized out = new Sized();
        StringBuilder w = new StringBuilder();
        boolean capital = true;
        while (true) {
            w.setLength(0);
            int len = 5 + r.nextInt(8);
            for (int i = 0; i < len; i++) {
                char c = letter(r);
                w.append(i == 0 && (capital || r.nextInt(20) == 0) ? Character.toUpperCase(c) : c);
            }
            int p = r.nextInt(16);
            capital = p == 0;
            w.append(p == 0 ? ". " : p == 1 ? ", " : " ");
            if (!out.append(w.toString())) break;
        }
        return out.fill();
    }

    private static final String LETTERS = "etaoinshrdlcumwfgypbvkjxqz";
    // per mille frequencies of LETTERS in English text, roughly
    private static final int[] FREQ = {127, 91, 82, 75, 70, 67, 63, 61, 60, 43, 40, 28, 28, 24, 24, 22, 20, 20, 20, 19, 15, 10, 8, 2, 1, 1};
    private static final int FREQ_SUM;

    static {
        int s = 0;
        for (int f : FREQ) s += f;
        FREQ_SUM = s;
    }

    private static char letter(SplittableRandom r) {
        int x = r.nextInt(FREQ_SUM);
        for (int i = 0; ; i++) {
            x -= FREQ[i];
            if (x < 0) return LETTERS.charAt(i);
        }
    }

    /** Appends whole chunks up to {@link #BYTES} UTF-8 bytes, then pads with ASCII letters. */
    private static final class Sized {
        private final StringBuilder sb = new StringBuilder(BYTES);
        private int bytes;

        boolean append(String chunk) {
            int n = chunk.getBytes(StandardCharsets.UTF_8).length;
            if (bytes + n > BYTES) return false;
            sb.append(chunk);
            bytes += n;
            return true;
        }

        String fill() {
            String pad = "The end";
            for (int i = 0; bytes < BYTES; i++, bytes++) sb.append(pad.charAt(i % pad.length()));
            String s = sb.toString();
            if (s.getBytes(StandardCharsets.UTF_8).length != BYTES) throw new AssertionError("size");
            return s;
        }
    }

    private static final class Gen {
        final SplittableRandom r;

        Gen(long seed) {
            r = new SplittableRandom(seed);
        }

        /** Skewed towards the first entries, so some words are much more frequent than others. */
        String pick(String[] a) {
            double u = r.nextDouble();
            return a[(int) (u * u * a.length)];
        }

        void np(StringBuilder sb) {
            sb.append(pick(DET)).append(' ');
            if (r.nextInt(3) > 0) sb.append(pick(ADJ)).append(' ');
            sb.append(pick(NOUN));
            if (r.nextInt(6) == 0) sb.append('s');
        }

        void subject(StringBuilder sb, boolean first) {
            int k = r.nextInt(10);
            int at = sb.length();
            if (k < 4) np(sb);
            else if (k < 7) sb.append(pick(PRON));
            else sb.append(pick(NAME));
            if (first) sb.setCharAt(at, Character.toUpperCase(sb.charAt(at)));
        }

        void clause(StringBuilder sb, boolean first) {
            subject(sb, first);
            if (r.nextInt(5) == 0) sb.append(' ').append(pick(ADV));
            if (r.nextInt(4) == 0) {
                sb.append(' ').append(pick(INTRANS));
            } else {
                sb.append(' ').append(pick(VERB)).append(' ');
                np(sb);
            }
            int k = r.nextInt(8);
            if (k < 3) {
                sb.append(' ').append(pick(PREP)).append(' ');
                np(sb);
            } else if (k == 3) {
                sb.append(' ').append(pick(PREP)).append(' ').append(1700 + r.nextInt(250));
            } else if (k == 4) {
                sb.append(", some ").append(2 + r.nextInt(r.nextBoolean() ? 20 : 2000)).append(' ').append(pick(UNIT)).append(" away");
            }
        }

        void sentence(StringBuilder sb) {
            int k = r.nextInt(12);
            if (k == 0) { // dialogue
                sb.append('"');
                int at = sb.length();
                sb.append(pick(CONTRACTED)).append(' ').append(pick(ADV)).append(' ').append(pick(VERB)).append(' ');
                np(sb);
                sb.setCharAt(at, Character.toUpperCase(sb.charAt(at)));
                sb.append(r.nextInt(3) == 0 ? "?\" " : ",\" ").append(pick(SAID)).append(' ').append(pick(NAME)).append('.');
                return;
            }
            clause(sb, true);
            int extra = r.nextInt(3);
            for (int i = 0; i < extra; i++) {
                if (r.nextInt(25) == 0) {
                    sb.append(" \u2014 ");
                } else {
                    sb.append(", ").append(pick(CONJ)).append(' ');
                }
                clause(sb, false);
            }
            if (r.nextInt(40) == 0) sb.append(", or so it\u2019s said");
            sb.append(k == 1 ? '?' : k == 2 ? '!' : '.');
        }
    }
}
