package io.ds4j.grammar;

import io.ds4j.grammar.JsonSchema.Node;

/**
 * Incremental, byte-level recogniser of one JSON document (RFC 8259, UTF-8) that matches a compiled
 * {@link JsonSchema} — {@link JsonSchema#anyObject()} for plain JSON-object mode. It works on bytes, not
 * characters, because tokens of a byte-level BPE vocabulary can split a multi-byte character.
 *
 * <p>The text starts with the value (no leading whitespace) and nothing follows it, so the output is
 * exactly one document. Limits keep a random or degenerate model from wandering forever inside an
 * open-ended production and bound the work per byte: nesting depth {@value #MAX_DEPTH}, runs of at most
 * {@value #MAX_WS} whitespace bytes, at most {@value #MAX_DIGITS} digits per integer or fraction part and
 * {@value #MAX_EXP_DIGITS} exponent digits; within them, documents are accepted exactly when they are valid
 * JSON matching the schema. Object keys of declared properties must be written as JSON serialisers write
 * them (plain UTF-8, minimal escapes) and in the declared order. String lengths count characters, an
 * escape sequence as one (so a surrogate pair written as two {@code \}{@code u} escapes counts as two).
 * A rejected byte leaves the state unchanged. Not thread-safe.
 */
public final class SchemaRecognizer implements ByteRecognizer {
    public static final int MAX_DEPTH = 64;
    public static final int MAX_WS = 32;
    public static final int MAX_DIGITS = 20;
    public static final int MAX_EXP_DIGITS = 5;
    // root phases
    private static final int R_START = 0, R_VALUE = 1, R_DONE = 2;
    // frame phases
    private static final int O_OPEN = 1, O_KEY = 2, O_COLON = 3, O_VSTART = 4, O_VALUE = 5, O_AFTER = 6;
    private static final int A_OPEN = 11, A_NEXT = 12, A_VALUE = 13, A_AFTER = 14;
    // scalars
    private static final int SK_NONE = 0, SK_STR = 1, SK_KEY = 2, SK_NUM = 3, SK_LIT = 4;
    private static final int S_CHARS = 0, S_ESC = 1, S_HEX = 2, S_UTF8 = 3;
    private static final int N_MINUS = 0, N_ZERO = 1, N_INT = 2, N_DOT = 3, N_FRAC = 4, N_E = 5, N_ESIGN = 6, N_EXP = 7;

    private final JsonSchema schema;
    private final int[] fNode = new int[MAX_DEPTH];
    private final int[] fPhase = new int[MAX_DEPTH];
    private final int[] fAux = new int[MAX_DEPTH];   // objects: next property index; arrays: items so far
    private final int[] fKey = new int[MAX_DEPTH];   // objects: the property whose value is being read
    private int depth;
    private int rootPhase = R_START;
    private int ws;
    // the scalar being read (at most one: scalars are leaves)
    private int sk = SK_NONE;
    private int sSub, sAux, sLen, sMin, sMax, sPos, sNode, lo, hi;
    private boolean sKey, sInt;
    private long sMask;
    private SchemaRecognizer undo;

    public SchemaRecognizer(JsonSchema schema) {
        this.schema = schema;
    }

    JsonSchema schema() {
        return schema;
    }

    @Override
    public ByteRecognizer blank() {
        return new SchemaRecognizer(schema);
    }

    @Override
    public void copyFrom(ByteRecognizer other) {
        SchemaRecognizer o = (SchemaRecognizer) other;
        System.arraycopy(o.fNode, 0, fNode, 0, o.depth);
        System.arraycopy(o.fPhase, 0, fPhase, 0, o.depth);
        System.arraycopy(o.fAux, 0, fAux, 0, o.depth);
        System.arraycopy(o.fKey, 0, fKey, 0, o.depth);
        depth = o.depth;
        rootPhase = o.rootPhase;
        ws = o.ws;
        sk = o.sk;
        sSub = o.sSub;
        sAux = o.sAux;
        sLen = o.sLen;
        sMin = o.sMin;
        sMax = o.sMax;
        sPos = o.sPos;
        sNode = o.sNode;
        lo = o.lo;
        hi = o.hi;
        sKey = o.sKey;
        sInt = o.sInt;
        sMask = o.sMask;
    }

    @Override
    public int plainStringRoom() {
        return sk == SK_STR && sSub == S_CHARS ? sMax - sLen : -1;
    }

    @Override
    public boolean complete() {
        if (rootPhase == R_DONE) return true;
        if (depth > 0) return false;
        // a top-level number or ambiguous literal ends with the text
        if (sk == SK_NUM) return sSub == N_ZERO || sSub == N_INT || sSub == N_FRAC || sSub == N_EXP;
        return sk == SK_LIT && litCompleteAt(sMask, sPos);
    }

    @Override
    public boolean feed(int c) {
        if (rootPhase == R_DONE) return false;
        return switch (sk) {
            case SK_STR -> stringByte(c);
            case SK_KEY -> keyByte(c);
            case SK_NUM -> numberByte(c);
            case SK_LIT -> literalByte(c);
            default -> structural(c);
        };
    }

    private Node node(int id) {
        return schema.node(id);
    }

    private boolean structural(int c) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (depth == 0 || ws >= MAX_WS) return false;
            ws++;
            return true;
        }
        if (depth == 0) {
            if (rootPhase != R_START) return false;
            rootPhase = R_VALUE;
            if (valueStart(schema.root, c)) return true;
            rootPhase = R_START;
            return false;
        }
        int f = depth - 1;
        Node n = node(fNode[f]);
        switch (fPhase[f]) {
            case O_OPEN:
                if (c == '}') return !requiredFrom(n, 0) && close();
                return keyStart(f, n, c);
            case O_KEY:
                return keyStart(f, n, c);
            case O_COLON:
                if (c != ':') return false;
                fPhase[f] = O_VSTART;
                ws = 0;
                return true;
            case O_VSTART:
                return childValue(f, O_VALUE, n.kind == JsonSchema.OBJECT ? n.props[fKey[f]] : n.values, c);
            case O_AFTER:
                if (c == ',') {
                    if (n.kind == JsonSchema.OBJECT && fAux[f] >= n.keys.length) return false;
                    fPhase[f] = O_KEY;
                    ws = 0;
                    return true;
                }
                return c == '}' && !requiredFrom(n, fAux[f]) && close();
            case A_OPEN:
                if (c == ']') return n.minItems == 0 && close();
                return n.maxItems > 0 && childValue(f, A_VALUE, n.items, c);
            case A_NEXT:
                return childValue(f, A_VALUE, n.items, c);
            case A_AFTER:
                if (c == ',') {
                    if (fAux[f] >= n.maxItems) return false;
                    fPhase[f] = A_NEXT;
                    ws = 0;
                    return true;
                }
                return c == ']' && fAux[f] >= n.minItems && close();
            default:
                return false;
        }
    }

    private boolean childValue(int f, int phase, int nodeId, int c) {
        int saved = fPhase[f];
        fPhase[f] = phase;
        if (valueStart(nodeId, c)) return true;
        fPhase[f] = saved;
        return false;
    }

    private static boolean requiredFrom(Node n, int from) {
        if (n.kind != JsonSchema.OBJECT) return false;
        for (int k = from; k < n.required.length; k++) if (n.required[k]) return true;
        return false;
    }

    private boolean keyStart(int f, Node n, int c) {
        if (c != '"') return false;
        if (n.kind == JsonSchema.FREE_OBJECT) {
            startString(0, Integer.MAX_VALUE, true);
            return true;
        }
        long m = 0;
        for (int k = fAux[f]; k < n.keys.length; k++) {
            m |= 1L << k;
            if (n.required[k]) break;
        }
        if (m == 0) return false;
        sk = SK_KEY;
        sMask = m;
        sPos = 1;
        ws = 0;
        return true;
    }

    private boolean keyByte(int c) {
        int f = depth - 1;
        Node n = node(fNode[f]);
        long m = 0;
        for (long r = sMask; r != 0; r &= r - 1) {
            int k = Long.numberOfTrailingZeros(r);
            byte[] key = n.keys[k];
            if (sPos < key.length && (key[sPos] & 0xff) == c) m |= 1L << k;
        }
        if (m == 0) return false;
        sPos++;
        sMask = m;
        for (long r = m; r != 0; r &= r - 1) {
            int k = Long.numberOfTrailingZeros(r);
            if (n.keys[k].length == sPos) { // the closing quote: keys are distinct, so only one ends here
                sk = SK_NONE;
                fKey[f] = k;
                fPhase[f] = O_COLON;
                ws = 0;
                return true;
            }
        }
        return true;
    }

    private boolean valueStart(int nodeId, int c) {
        int cls = JsonSchema.classOf(c);
        if (cls < 0) return false;
        int id = schema.resolve(nodeId, cls);
        if (id < 0) return false;
        Node n = node(id);
        switch (n.kind) {
            case JsonSchema.OBJECT, JsonSchema.FREE_OBJECT, JsonSchema.ARRAY -> {
                if (depth == MAX_DEPTH) return false;
                fNode[depth] = id;
                fPhase[depth] = n.kind == JsonSchema.ARRAY ? A_OPEN : O_OPEN;
                fAux[depth] = 0;
                fKey[depth] = 0;
                depth++;
            }
            case JsonSchema.STRING -> startString(n.minLength, n.maxLength, false);
            case JsonSchema.NUMBER, JsonSchema.INTEGER -> {
                sk = SK_NUM;
                sInt = n.kind == JsonSchema.INTEGER;
                sSub = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
                sAux = c == '-' ? 0 : 1;
            }
            case JsonSchema.LITERALS -> {
                long m = 0;
                for (int i = 0; i < n.literals.length; i++) if ((n.literals[i][0] & 0xff) == c) m |= 1L << i;
                if (m == 0) return false;
                sk = SK_LIT;
                sNode = id;
                sMask = m;
                sPos = 1;
                ws = 0;
                if (litCompleteAt(m, 1) && !litLongerThan(m, 1)) {
                    sk = SK_NONE;
                    valueEnded();
                }
                return true;
            }
            default -> {
                return false;
            }
        }
        ws = 0;
        return true;
    }

    private void startString(int min, int max, boolean key) {
        sk = SK_STR;
        sSub = S_CHARS;
        sLen = 0;
        sMin = min;
        sMax = max;
        sKey = key;
        ws = 0;
    }

    private boolean stringByte(int c) {
        switch (sSub) {
            case S_ESC:
                if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
                    sSub = S_CHARS;
                    return true;
                }
                if (c == 'u') {
                    sSub = S_HEX;
                    sAux = 4;
                    return true;
                }
                return false;
            case S_HEX:
                if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
                if (--sAux == 0) sSub = S_CHARS;
                return true;
            case S_UTF8:
                if (c < lo || c > hi) return false;
                lo = 0x80;
                hi = 0xBF;
                if (--sAux == 0) sSub = S_CHARS;
                return true;
            default:
                break;
        }
        if (c == '"') {
            if (sLen < sMin) return false;
            sk = SK_NONE;
            if (sKey) {
                fPhase[depth - 1] = O_COLON;
                ws = 0;
            } else {
                valueEnded();
            }
            return true;
        }
        if (c < 0x20 || sLen >= sMax) return false;
        int need, first, last;
        if (c < 0x80) {
            if (c == '\\') sSub = S_ESC;
            sLen++;
            return true;
        } else if (c >= 0xC2 && c <= 0xDF) { need = 1; first = 0x80; last = 0xBF; }
        else if (c == 0xE0) { need = 2; first = 0xA0; last = 0xBF; }
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) { need = 2; first = 0x80; last = 0xBF; }
        else if (c == 0xED) { need = 2; first = 0x80; last = 0x9F; }
        else if (c == 0xF0) { need = 3; first = 0x90; last = 0xBF; }
        else if (c >= 0xF1 && c <= 0xF3) { need = 3; first = 0x80; last = 0xBF; }
        else if (c == 0xF4) { need = 3; first = 0x80; last = 0x8F; }
        else return false;
        sSub = S_UTF8;
        sAux = need;
        lo = first;
        hi = last;
        sLen++;
        return true;
    }

    private boolean numberByte(int c) {
        boolean digit = c >= '0' && c <= '9';
        switch (sSub) {
            case N_MINUS:
                if (c == '0') { sSub = N_ZERO; return true; }
                if (digit) { sSub = N_INT; sAux = 1; return true; }
                return false;
            case N_ZERO:
            case N_INT:
                if (digit && sSub == N_INT) {
                    if (sAux >= MAX_DIGITS) return false;
                    sAux++;
                    return true;
                }
                if (!sInt && c == '.') { sSub = N_DOT; return true; }
                if (!sInt && (c == 'e' || c == 'E')) { sSub = N_E; return true; }
                return endByDelimiter(c);
            case N_DOT:
                if (digit) { sSub = N_FRAC; sAux = 1; return true; }
                return false;
            case N_FRAC:
                if (digit) {
                    if (sAux >= MAX_DIGITS) return false;
                    sAux++;
                    return true;
                }
                if (c == 'e' || c == 'E') { sSub = N_E; return true; }
                return endByDelimiter(c);
            case N_E:
                if (c == '+' || c == '-') { sSub = N_ESIGN; return true; }
                if (digit) { sSub = N_EXP; sAux = 1; return true; }
                return false;
            case N_ESIGN:
                if (digit) { sSub = N_EXP; sAux = 1; return true; }
                return false;
            case N_EXP:
                if (digit) {
                    if (sAux >= MAX_EXP_DIGITS) return false;
                    sAux++;
                    return true;
                }
                return endByDelimiter(c);
            default:
                return false;
        }
    }

    private boolean literalByte(int c) {
        Node n = node(sNode);
        long m = 0;
        for (long r = sMask; r != 0; r &= r - 1) {
            int i = Long.numberOfTrailingZeros(r);
            byte[] l = n.literals[i];
            if (sPos < l.length && (l[sPos] & 0xff) == c) m |= 1L << i;
        }
        if (m == 0) return litCompleteAt(sMask, sPos) && endByDelimiter(c);
        sMask = m;
        sPos++;
        if (litCompleteAt(m, sPos) && !litLongerThan(m, sPos)) {
            sk = SK_NONE;
            valueEnded();
        }
        return true;
    }

    private boolean litCompleteAt(long mask, int pos) {
        Node n = node(sNode);
        for (long r = mask; r != 0; r &= r - 1) if (n.literals[Long.numberOfTrailingZeros(r)].length == pos) return true;
        return false;
    }

    private boolean litLongerThan(long mask, int pos) {
        Node n = node(sNode);
        for (long r = mask; r != 0; r &= r - 1) if (n.literals[Long.numberOfTrailingZeros(r)].length > pos) return true;
        return false;
    }

    /** A number (or a literal that is a prefix of another) ends at a byte it cannot take: read it as structure. */
    private boolean endByDelimiter(int c) {
        if (depth == 0) return false; // a top-level value ends only with the text
        if (undo == null) undo = new SchemaRecognizer(schema);
        undo.copyFrom(this);
        sk = SK_NONE;
        valueEnded();
        if (structural(c)) return true;
        copyFrom(undo);
        return false;
    }

    private void valueEnded() {
        ws = 0;
        if (depth == 0) {
            rootPhase = R_DONE;
            return;
        }
        int f = depth - 1;
        if (fPhase[f] == O_VALUE) {
            fAux[f] = node(fNode[f]).kind == JsonSchema.OBJECT ? fKey[f] + 1 : fAux[f];
            fPhase[f] = O_AFTER;
        } else if (fPhase[f] == A_VALUE) {
            fAux[f]++;
            fPhase[f] = A_AFTER;
        }
    }

    private boolean close() {
        depth--;
        valueEnded();
        return true;
    }
}
