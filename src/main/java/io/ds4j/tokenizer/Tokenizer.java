package io.ds4j.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

/**
 * DeepSeek V3/V4 byte-level BPE tokenizer built from GGUF {@code tokenizer.ggml.*} metadata
 * (chat-format.md section 1). Immutable and thread-safe.
 *
 * <p>Encoding: (optional) added-token split, pre-tokenizer regexes, BPE per piece. Added tokens are
 * the entries of type 3 (control) and 4 (user-defined). {@link #encode(String)} does not match them:
 * a user typing {@code <｜User｜>} gets ordinary text tokens (security default); {@link #encode(String,
 * boolean)} with {@code true} matches them leftmost-longest like HF tokenizers.
 *
 * <p>Lone surrogates in the input cannot be UTF-8 encoded; they are replaced by U+FFFD before
 * tokenization (what the reference JS tokenizer produces, and what Rust gives on the substituted
 * text). Java's own {@code getBytes(UTF_8)} would write '?' instead.
 */
public final class Tokenizer {
    static final int TYPE_NORMAL = 1;
    static final int TYPE_CONTROL = 3;
    static final int TYPE_USER_DEFINED = 4;
    static final int TYPE_UNUSED = 5;
    static final int TYPE_BYTE = 6;

    private static final int CACHE_SLOTS = 1 << 16;
    private static final int CACHE_MAX_PIECE = 48;

    private final String[] tokens;
    private final int[] types;
    private final byte[][] tokenBytes;
    private final Map<String, Integer> specialIds;
    /** Added-token strings by first character, longest first. */
    private final Map<Character, String[]> specialsByFirst;
    private final boolean[] specialFirstBmp = new boolean[65536];
    private final BpeModel bpe;
    private final int bos;
    private final int eos;
    /**
     * Piece cache: direct-mapped, shared by all threads without locks. Entries are immutable (final
     * fields), so a racy read sees either null, an old entry or a complete new one; a hit needs no
     * allocation (the key is compared in place with regionMatches).
     */
    private final CacheEntry[] cache = new CacheEntry[CACHE_SLOTS];

    private record CacheEntry(int hash, String piece, int[] ids) {}

    private Tokenizer(String[] tokens, int[] types, BpeModel bpe, int bos, int eos) {
        this.tokens = tokens;
        this.types = types;
        this.bpe = bpe;
        this.bos = bos;
        this.eos = eos;
        this.tokenBytes = new byte[tokens.length][];
        Map<String, Integer> specials = new HashMap<>();
        Map<Character, List<String>> byFirst = new HashMap<>();
        for (int id = 0; id < tokens.length; id++) {
            String t = tokens[id];
            int type = types[id];
            if (isAddedType(type)) {
                tokenBytes[id] = t.getBytes(StandardCharsets.UTF_8);
                if (!t.isEmpty() && specials.putIfAbsent(t, id) == null) {
                    byFirst.computeIfAbsent(t.charAt(0), c -> new ArrayList<>()).add(t);
                    specialFirstBmp[t.charAt(0)] = true;
                }
            } else if (type == TYPE_BYTE && t.length() == 6 && t.startsWith("<0x") && t.endsWith(">")) {
                tokenBytes[id] = new byte[] {(byte) Integer.parseInt(t.substring(3, 5), 16)};
            } else {
                byte[] b = ByteLevel.decode(t);
                tokenBytes[id] = b != null ? b : t.getBytes(StandardCharsets.UTF_8);
            }
        }
        this.specialIds = Map.copyOf(specials);
        Map<Character, String[]> sorted = new HashMap<>();
        byFirst.forEach((c, list) -> {
            list.sort((a, b) -> Integer.compare(b.length(), a.length()));
            sorted.put(c, list.toArray(String[]::new));
        });
        this.specialsByFirst = Map.copyOf(sorted);
    }

    private static boolean isAddedType(int type) {
        return type == TYPE_CONTROL || type == TYPE_USER_DEFINED;
    }

    /**
     * Builds the tokenizer from {@code tokenizer.ggml.model} (must be "gpt2"), {@code .pre}
     * ("deepseek-v3", "joyai-llm" or absent), {@code .tokens}, {@code .token_type}, {@code .merges},
     * {@code .bos_token_id}, {@code .eos_token_id}.
     *
     * @throws IllegalArgumentException with a message naming the problem if the metadata is unusable
     */
    public static Tokenizer fromMetadata(TokenizerMetadata meta) {
        String model = meta.string("tokenizer.ggml.model")
                .orElseThrow(() -> new IllegalArgumentException("model has no tokenizer (tokenizer.ggml.model missing)"));
        if (!model.equals("gpt2")) {
            throw new IllegalArgumentException("unsupported tokenizer.ggml.model '" + model + "' (expected gpt2, byte-level BPE)");
        }
        String pre = meta.string("tokenizer.ggml.pre").orElse("deepseek-v3");
        if (!pre.equals("deepseek-v3") && !pre.equals("joyai-llm")) {
            throw new IllegalArgumentException("unsupported tokenizer.ggml.pre '" + pre + "' (expected deepseek-v3 or joyai-llm)");
        }
        List<String> tokenList = meta.stringArray("tokenizer.ggml.tokens");
        if (tokenList.isEmpty()) throw new IllegalArgumentException("tokenizer.ggml.tokens is missing or empty");
        String[] tokens = tokenList.toArray(String[]::new);
        int n = tokens.length;
        int[] types = meta.intArray("tokenizer.ggml.token_type");
        if (types.length == 0) {
            types = new int[n];
            Arrays.fill(types, TYPE_NORMAL);
        } else if (types.length != n) {
            throw new IllegalArgumentException("tokenizer.ggml.token_type has " + types.length + " entries but tokenizer.ggml.tokens has " + n);
        } else {
            types = types.clone();
        }
        for (int i = 0; i < n; i++) {
            if (tokens[i] == null) throw new IllegalArgumentException("tokenizer.ggml.tokens[" + i + "] is null");
        }

        Map<String, Integer> vocab = new HashMap<>(n * 2);
        for (int id = 0; id < n; id++) {
            int t = types[id];
            if (t != TYPE_CONTROL && t != TYPE_USER_DEFINED && t != TYPE_UNUSED) vocab.putIfAbsent(tokens[id], id);
        }
        int[] byteIds = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = vocab.get(String.valueOf(ByteLevel.charOf(b)));
            if (id == null) {
                throw new IllegalArgumentException(String.format("vocabulary lacks the byte-level symbol of byte 0x%02X", b));
            }
            byteIds[b] = id;
        }
        List<String> mergeList = meta.stringArray("tokenizer.ggml.merges");
        if (mergeList.isEmpty()) throw new IllegalArgumentException("tokenizer.ggml.merges is missing or empty");
        int m = mergeList.size();
        int[] left = new int[m], right = new int[m], merged = new int[m];
        for (int r = 0; r < m; r++) {
            String line = mergeList.get(r);
            int sp = line == null ? -1 : line.indexOf(' ', 1);
            if (sp < 0 || sp == line.length() - 1) {
                throw new IllegalArgumentException("tokenizer.ggml.merges[" + r + "] is not \"left right\": " + line);
            }
            String a = line.substring(0, sp), b = line.substring(sp + 1);
            Integer ia = vocab.get(a), ib = vocab.get(b), iab = vocab.get(a + b);
            if (ia == null || ib == null || iab == null) {
                throw new IllegalArgumentException("tokenizer.ggml.merges[" + r + "] '" + line + "' refers to a string missing from the vocabulary");
            }
            left[r] = ia;
            right[r] = ib;
            merged[r] = iab;
        }
        int bos = idKey(meta, "tokenizer.ggml.bos_token_id", n, tokens, "<｜begin▁of▁sentence｜>");
        int eos = idKey(meta, "tokenizer.ggml.eos_token_id", n, tokens, "<｜end▁of▁sentence｜>");
        return new Tokenizer(tokens, types, new BpeModel(byteIds, left, right, merged), bos, eos);
    }

    private static int idKey(TokenizerMetadata meta, String key, int n, String[] tokens, String fallback) {
        var v = meta.integer(key);
        if (v.isPresent()) {
            long id = v.getAsLong();
            if (id < 0 || id >= n) throw new IllegalArgumentException(key + " = " + id + " is outside the " + n + " tokens");
            return (int) id;
        }
        for (int i = 0; i < n; i++) if (tokens[i].equals(fallback)) return i;
        throw new IllegalArgumentException(key + " is missing and the vocabulary has no " + fallback);
    }

    // ------------------------------------------------------------------ encode

    /** The single token of a text that is one token (convenience for tests and tools). */
    public int encodeOne(String text) {
        int[] ids = encode(text, true);
        if (ids.length != 1) throw new IllegalArgumentException("'" + text + "' is " + ids.length + " tokens, not one");
        return ids[0];
    }

    /** Plain text: added/special-token strings are NOT matched (security default). */
    public int[] encode(String text) {
        return encode(text, false);
    }

    /** With {@code matchSpecial}, added-token strings become their ids (leftmost-longest, like HF). */
    public int[] encode(String text, boolean matchSpecial) {
        String s = replaceLoneSurrogates(text);
        IntList out = new IntList(Math.max(16, s.length() / 3));
        PreTokenizer pre = new PreTokenizer(s, (a, b) -> encodePiece(s, a, b, out));
        if (!matchSpecial || specialIds.isEmpty()) {
            pre.split(0, s.length());
            return out.toArray();
        }
        int sectionStart = 0, i = 0, len = s.length();
        while (i < len) {
            char c = s.charAt(i);
            if (specialFirstBmp[c]) {
                String hit = null;
                for (String cand : specialsByFirst.get(c)) {
                    if (s.startsWith(cand, i)) {
                        hit = cand;
                        break;
                    }
                }
                if (hit != null) {
                    pre.split(sectionStart, i);
                    out.add(specialIds.get(hit));
                    i += hit.length();
                    sectionStart = i;
                    continue;
                }
            }
            i++;
        }
        pre.split(sectionStart, len);
        return out.toArray();
    }

    private void encodePiece(String s, int start, int end, IntList out) {
        int len = end - start;
        if (len > CACHE_MAX_PIECE) {
            byte[] b = s.substring(start, end).getBytes(StandardCharsets.UTF_8);
            out.addAll(bpe.encode(b, 0, b.length));
            return;
        }
        int h = 0;
        for (int i = start; i < end; i++) h = 31 * h + s.charAt(i);
        h *= 0x9E3779B9;
        int slot = h >>> (32 - 16);
        CacheEntry e = cache[slot];
        if (e != null && e.hash == h && e.piece.length() == len && s.regionMatches(start, e.piece, 0, len)) {
            out.addAll(e.ids);
            return;
        }
        String piece = s.substring(start, end);
        byte[] b = piece.getBytes(StandardCharsets.UTF_8);
        int[] ids = bpe.encode(b, 0, b.length);
        cache[slot] = new CacheEntry(h, piece, ids);
        out.addAll(ids);
    }

    /** Replaces every unpaired UTF-16 surrogate by U+FFFD (returns the same instance if there is none). */
    static String replaceLoneSurrogates(String s) {
        int len = s.length();
        int i = 0;
        for (; i < len; i++) {
            char c = s.charAt(i);
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < len && Character.isLowSurrogate(s.charAt(i + 1))) {
                    i++;
                    continue;
                }
                break;
            }
        }
        if (i == len) return s;
        StringBuilder sb = new StringBuilder(len);
        sb.append(s, 0, i);
        for (; i < len; i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < len && Character.isLowSurrogate(s.charAt(i + 1))) {
                sb.append(c).append(s.charAt(++i));
            } else if (Character.isSurrogate(c)) {
                sb.append('\uFFFD');
            } else {
                sb.append(c);
            }
        }
        return sb.toString();
    }

    // ------------------------------------------------------------------ decode

    /** Concatenates the tokens' bytes and decodes UTF-8; invalid sequences become U+FFFD. */
    public String decode(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(ids.length * 4);
        for (int id : ids) out.writeBytes(bytesOf(id));
        return out.toString(StandardCharsets.UTF_8);
    }

    /** A fresh incremental decoder. */
    public StreamDecoder streamDecoder() {
        return new Utf8StreamDecoder(this);
    }

    /** The exact bytes this token stands for (a copy). */
    public byte[] tokenBytes(int id) {
        return bytesOf(id).clone();
    }

    byte[] bytesOf(int id) {
        checkId(id);
        return tokenBytes[id];
    }

    /**
     * The token as text, for logprobs: added tokens verbatim, others their bytes decoded as UTF-8 (a
     * token that holds part of a multi-byte character gives U+FFFD; use {@link #tokenBytes} for bytes).
     */
    public String tokenText(int id) {
        checkId(id);
        if (isAddedType(types[id])) return tokens[id];
        return new String(tokenBytes[id], StandardCharsets.UTF_8);
    }

    /** The vocabulary string as stored in the model (byte-level form for normal tokens). */
    public String rawToken(int id) {
        checkId(id);
        return tokens[id];
    }

    /** Id of an added/special token by its exact text, e.g. "<｜User｜>" -> 128803. */
    public OptionalInt specialTokenId(String text) {
        Integer id = specialIds.get(text);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** Like {@link #specialTokenId} but fails with a clear message when the model lacks the token. */
    public int requireSpecial(String text) {
        Integer id = specialIds.get(text);
        if (id == null) throw new IllegalStateException("the model's vocabulary has no special token " + text);
        return id;
    }

    public int bosId() {
        return bos;
    }

    public int eosId() {
        return eos;
    }

    public int vocabSize() {
        return tokens.length;
    }

    /** Added token (control or user-defined): structure, never shown as content. */
    public boolean isControl(int id) {
        return id >= 0 && id < types.length && isAddedType(types[id]);
    }

    /** The token that stands for one raw byte (0..255); every byte has one in a byte-level vocabulary. */
    public int byteTokenId(int b) {
        if (b < 0 || b > 255) throw new IllegalArgumentException("not a byte: " + b);
        return bpe.byteIds[b];
    }

    /** GGUF token type (1 normal, 3 control, 4 user-defined, 5 unused, 6 byte). */
    public int tokenType(int id) {
        checkId(id);
        return types[id];
    }

    BpeModel bpeModel() {
        return bpe;
    }

    private void checkId(int id) {
        if (id < 0 || id >= tokens.length) {
            throw new IllegalArgumentException("token id " + id + " is outside the vocabulary (0.." + (tokens.length - 1) + ")");
        }
    }

    /** Growable int array (avoids boxing on the hot path). */
    static final class IntList {
        private int[] a;
        private int n;

        IntList(int cap) {
            a = new int[cap];
        }

        void add(int v) {
            if (n == a.length) a = Arrays.copyOf(a, n * 2 + 8);
            a[n++] = v;
        }

        void addAll(int[] v) {
            if (n + v.length > a.length) a = Arrays.copyOf(a, Math.max(n * 2, n + v.length) + 8);
            System.arraycopy(v, 0, a, n, v.length);
            n += v.length;
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}
