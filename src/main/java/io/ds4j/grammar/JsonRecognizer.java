package io.ds4j.grammar;

/**
 * Incremental, byte-level recogniser of one JSON value (RFC 8259, UTF-8), used to constrain generation:
 * {@link #feed(int)} accepts a byte only if the bytes so far are still the prefix of some valid document,
 * and {@link #complete()} says the value has ended. It works on bytes, not characters, because tokens of a
 * byte-level BPE vocabulary can split a multi-byte character.
 *
 * <p>Limits keep a random or degenerate model from wandering forever inside an open-ended production and
 * bound the work per byte: nesting depth {@value #MAX_DEPTH}, runs of at most {@value #MAX_WS} whitespace
 * bytes, integer/fraction parts of at most {@value #MAX_DIGITS} digits and exponents of at most
 * {@value #MAX_EXP_DIGITS}. Documents within these limits are accepted exactly when they are valid JSON.
 * With {@code objectOnly} the top-level value must be an object (OpenAI's {@code json_object} mode). The
 * text starts with the value itself (no leading whitespace) and after the value is complete no further
 * byte is accepted (the caller ends generation), so the output is exactly one JSON value.
 *
 * <p>A rejected byte leaves the state unchanged, and {@link #copyFrom} makes trial runs cheap (the mask
 * computation tries every vocabulary token from the same state). Not thread-safe.
 */
public final class JsonRecognizer implements ByteRecognizer {
    public static final int MAX_DEPTH = 64;
    public static final int MAX_WS = 32;
    public static final int MAX_DIGITS = 20;
    public static final int MAX_EXP_DIGITS = 5;

    // states
    private static final int BEFORE = 0;      // before the top-level value
    private static final int OBJ_OPEN = 1;    // after '{': '"' or '}'
    private static final int OBJ_KEY = 2;     // after ',' in an object: '"'
    private static final int COLON = 3;       // after a key: ':'
    private static final int VALUE = 4;       // after ':' or ',' in an array: a value
    private static final int ARR_OPEN = 5;    // after '[': a value or ']'
    private static final int AFTER = 6;       // after a value inside a container: ',' or the closer
    private static final int DONE = 7;        // the top-level value is complete
    private static final int STR = 8;
    private static final int STR_ESC = 9;
    private static final int STR_HEX = 10;    // aux = hex digits still needed
    private static final int STR_UTF8 = 11;   // aux = continuation bytes still needed; lo/hi = next byte's range
    private static final int NUM_MINUS = 12;  // '-' seen: a digit must follow
    private static final int NUM_ZERO = 13;   // a leading 0
    private static final int NUM_INT = 14;
    private static final int NUM_DOT = 15;    // '.' seen: a digit must follow
    private static final int NUM_FRAC = 16;
    private static final int NUM_E = 17;      // 'e' seen: sign or digit
    private static final int NUM_ESIGN = 18;  // sign seen: a digit must follow
    private static final int NUM_EXP = 19;
    private static final int LIT = 20;        // inside true/false/null: lit, aux = next index

    private static final byte[][] LITERALS = {"true".getBytes(), "false".getBytes(), "null".getBytes()};

    private final boolean objectOnly;
    private final byte[] stack = new byte[MAX_DEPTH]; // '{' or '['
    private int depth;
    private int state = BEFORE;
    private boolean key;   // the open string is an object key
    private int aux;       // digits counted, hex digits left, continuation bytes left, literal index
    private int lit;       // which literal
    private int lo, hi;    // allowed range of the next UTF-8 continuation byte
    private int ws;        // whitespace bytes in the current run

    public JsonRecognizer(boolean objectOnly) {
        this.objectOnly = objectOnly;
    }

    @Override
    public ByteRecognizer blank() {
        return new JsonRecognizer(objectOnly);
    }

    @Override
    public void copyFrom(ByteRecognizer other) {
        JsonRecognizer o = (JsonRecognizer) other;
        System.arraycopy(o.stack, 0, stack, 0, o.depth);
        depth = o.depth;
        state = o.state;
        key = o.key;
        aux = o.aux;
        lit = o.lit;
        lo = o.lo;
        hi = o.hi;
        ws = o.ws;
    }

    /** The top-level value has ended. */
    @Override
    public boolean complete() {
        return state == DONE;
    }

    /** Nothing has been accepted yet (or only whitespace). */
    public boolean atStart() {
        return state == BEFORE;
    }

    /** Feeds one byte (0..255); false and no change if it cannot continue a valid document. */
    @Override
    public boolean feed(int c) {
        switch (state) {
            case STR:
                return string(c);
            case STR_ESC:
                if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
                    state = STR;
                    return true;
                }
                if (c == 'u') {
                    state = STR_HEX;
                    aux = 4;
                    return true;
                }
                return false;
            case STR_HEX:
                if (!isHex(c)) return false;
                if (--aux == 0) state = STR;
                return true;
            case STR_UTF8:
                if (c < lo || c > hi) return false;
                lo = 0x80;
                hi = 0xBF;
                if (--aux == 0) state = STR;
                return true;
            case LIT: {
                byte[] l = LITERALS[lit];
                if (c != l[aux]) return false;
                if (++aux == l.length) valueEnded();
                return true;
            }
            case NUM_MINUS:
                if (c == '0') { state = NUM_ZERO; return true; }
                if (c >= '1' && c <= '9') { state = NUM_INT; aux = 1; return true; }
                return false;
            case NUM_ZERO:
                if (c == '.') { state = NUM_DOT; return true; }
                if (c == 'e' || c == 'E') { state = NUM_E; return true; }
                return endNumber(c);
            case NUM_INT:
                if (c >= '0' && c <= '9') {
                    if (aux >= MAX_DIGITS) return false;
                    aux++;
                    return true;
                }
                if (c == '.') { state = NUM_DOT; return true; }
                if (c == 'e' || c == 'E') { state = NUM_E; return true; }
                return endNumber(c);
            case NUM_DOT:
                if (c >= '0' && c <= '9') { state = NUM_FRAC; aux = 1; return true; }
                return false;
            case NUM_FRAC:
                if (c >= '0' && c <= '9') {
                    if (aux >= MAX_DIGITS) return false;
                    aux++;
                    return true;
                }
                if (c == 'e' || c == 'E') { state = NUM_E; return true; }
                return endNumber(c);
            case NUM_E:
                if (c == '+' || c == '-') { state = NUM_ESIGN; return true; }
                if (c >= '0' && c <= '9') { state = NUM_EXP; aux = 1; return true; }
                return false;
            case NUM_ESIGN:
                if (c >= '0' && c <= '9') { state = NUM_EXP; aux = 1; return true; }
                return false;
            case NUM_EXP:
                if (c >= '0' && c <= '9') {
                    if (aux >= MAX_EXP_DIGITS) return false;
                    aux++;
                    return true;
                }
                return endNumber(c);
            case DONE:
                return false;
            default:
                return structural(c);
        }
    }

    private boolean structural(int c) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (state == BEFORE) return false; // the answer starts with its value
            if (ws >= MAX_WS) return false;
            ws++;
            return true;
        }
        switch (state) {
            case BEFORE:
                if (objectOnly && c != '{') return false;
                return valueStart(c);
            case VALUE:
                return valueStart(c);
            case ARR_OPEN:
                if (c == ']') return close('[');
                return valueStart(c);
            case OBJ_OPEN:
                if (c == '}') return close('{');
                return keyStart(c);
            case OBJ_KEY:
                return keyStart(c);
            case COLON:
                if (c != ':') return false;
                state = VALUE;
                ws = 0;
                return true;
            case AFTER:
                if (c == ',') {
                    state = stack[depth - 1] == '{' ? OBJ_KEY : VALUE;
                    ws = 0;
                    return true;
                }
                if (c == '}') return close('{');
                if (c == ']') return close('[');
                return false;
            default:
                return false;
        }
    }

    private boolean keyStart(int c) {
        if (c != '"') return false;
        state = STR;
        key = true;
        ws = 0;
        return true;
    }

    private boolean valueStart(int c) {
        switch (c) {
            case '{', '[' -> {
                if (depth == MAX_DEPTH) return false;
                stack[depth++] = (byte) c;
                state = c == '{' ? OBJ_OPEN : ARR_OPEN;
            }
            case '"' -> {
                state = STR;
                key = false;
            }
            case '-' -> state = NUM_MINUS;
            case '0' -> state = NUM_ZERO;
            case 't', 'f', 'n' -> {
                state = LIT;
                lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
                aux = 1;
            }
            default -> {
                if (c >= '1' && c <= '9') {
                    state = NUM_INT;
                    aux = 1;
                } else {
                    return false;
                }
            }
        }
        ws = 0;
        return true;
    }

    private boolean close(char open) {
        if (depth == 0 || stack[depth - 1] != open) return false;
        depth--;
        ws = 0;
        valueEnded();
        return true;
    }

    private void valueEnded() {
        state = depth == 0 ? DONE : AFTER;
        ws = 0;
    }

    /** A byte that is not part of the number ends it and is then read as structure. */
    private boolean endNumber(int c) {
        int saved = state, savedAux = aux;
        valueEnded();
        if (state == DONE) { // a top-level number is ended by whitespace (nothing else may follow)
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return true;
            state = saved;
            aux = savedAux;
            return false;
        }
        if (structural(c)) return true;
        state = saved;
        aux = savedAux;
        return false;
    }

    private boolean string(int c) {
        if (c == '"') {
            if (key) {
                state = COLON;
                ws = 0;
            } else {
                valueEnded();
            }
            return true;
        }
        if (c == '\\') {
            state = STR_ESC;
            return true;
        }
        if (c < 0x20) return false;
        if (c < 0x80) return true;
        // UTF-8 lead byte: the ranges exclude overlong forms, surrogates and code points above U+10FFFF
        if (c >= 0xC2 && c <= 0xDF) return utf8(1, 0x80, 0xBF);
        if (c == 0xE0) return utf8(2, 0xA0, 0xBF);
        if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return utf8(2, 0x80, 0xBF);
        if (c == 0xED) return utf8(2, 0x80, 0x9F);
        if (c == 0xF0) return utf8(3, 0x90, 0xBF);
        if (c >= 0xF1 && c <= 0xF3) return utf8(3, 0x80, 0xBF);
        if (c == 0xF4) return utf8(3, 0x80, 0x8F);
        return false;
    }

    private boolean utf8(int n, int firstLo, int firstHi) {
        state = STR_UTF8;
        aux = n;
        lo = firstLo;
        hi = firstHi;
        return true;
    }

    private static boolean isHex(int c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }
}
