package io.ds4j.chat;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Minimal JSON reader/writer for the prompt format, kept free of Jackson so the chat package has no
 * framework types. Objects keep key order; numbers keep their literal text. The writer reproduces
 * Python's {@code json.dumps(v, ensure_ascii=False)} (separators ", " and ": ", non-ASCII raw, floats
 * as Python's repr), which is what DeepSeek's reference encoder puts into prompts.
 */
public final class Json {
    /** JSON null (Java null means "absent"). */
    public static final Object NULL = new Object() {
        @Override
        public String toString() {
            return "null";
        }
    };

    /** A number with its literal text. */
    public record Num(String literal) {
        boolean isInteger() {
            return literal.indexOf('.') < 0 && literal.indexOf('e') < 0 && literal.indexOf('E') < 0;
        }
    }

    /** Malformed JSON. */
    public static final class JsonException extends IllegalArgumentException {
        JsonException(String msg) {
            super(msg);
        }
    }

    private final String s;
    private int i;

    private Json(String s) {
        this.s = s;
    }

    /** Parses a complete JSON text (objects as LinkedHashMap, arrays as List, Num, String, Boolean, NULL). */
    public static Object parse(String text) {
        if (text == null) throw new JsonException("no JSON text");
        Json p = new Json(text);
        p.ws();
        Object v = p.value(0);
        p.ws();
        if (p.i != text.length()) throw new JsonException("trailing characters at offset " + p.i);
        return v;
    }

    /** Whether the text is one complete JSON value. */
    public static boolean isValid(String text) {
        try {
            parse(text);
            return true;
        } catch (JsonException e) {
            return false;
        }
    }

    private void ws() {
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') i++;
            else break;
        }
    }

    private JsonException err(String what) {
        return new JsonException(what + " at offset " + i);
    }

    private Object value(int depth) {
        if (depth > 512) throw err("nesting too deep");
        if (i >= s.length()) throw err("unexpected end");
        char c = s.charAt(i);
        switch (c) {
            case '{': {
                i++;
                Map<String, Object> m = new LinkedHashMap<>();
                ws();
                if (peek('}')) {
                    i++;
                    return m;
                }
                while (true) {
                    ws();
                    if (!peek('"')) throw err("expected a string key");
                    String k = string();
                    ws();
                    expect(':');
                    ws();
                    Object v = value(depth + 1);
                    if (!m.containsKey(k)) m.put(k, v);
                    else m.put(k, v); // Python keeps the first position, the last value
                    ws();
                    if (peek(',')) {
                        i++;
                        continue;
                    }
                    expect('}');
                    return m;
                }
            }
            case '[': {
                i++;
                List<Object> l = new ArrayList<>();
                ws();
                if (peek(']')) {
                    i++;
                    return l;
                }
                while (true) {
                    ws();
                    l.add(value(depth + 1));
                    ws();
                    if (peek(',')) {
                        i++;
                        continue;
                    }
                    expect(']');
                    return l;
                }
            }
            case '"':
                return string();
            case 't':
                word("true");
                return Boolean.TRUE;
            case 'f':
                word("false");
                return Boolean.FALSE;
            case 'n':
                word("null");
                return NULL;
            default:
                if (c == '-' || (c >= '0' && c <= '9')) return number();
                throw err("unexpected character '" + c + "'");
        }
    }

    private boolean peek(char c) {
        return i < s.length() && s.charAt(i) == c;
    }

    private void expect(char c) {
        if (!peek(c)) throw err("expected '" + c + "'");
        i++;
    }

    private void word(String w) {
        if (!s.startsWith(w, i)) throw err("expected " + w);
        i += w.length();
    }

    private Num number() {
        int st = i;
        if (peek('-')) i++;
        if (peek('0')) i++;
        else if (!digits()) throw err("bad number");
        if (peek('.')) {
            i++;
            if (!digits()) throw err("bad number");
        }
        if (peek('e') || peek('E')) {
            i++;
            if (peek('+') || peek('-')) i++;
            if (!digits()) throw err("bad number");
        }
        return new Num(s.substring(st, i));
    }

    private boolean digits() {
        int st = i;
        while (i < s.length() && s.charAt(i) >= '0' && s.charAt(i) <= '9') i++;
        return i > st;
    }

    private String string() {
        i++; // opening quote
        StringBuilder sb = null;
        int st = i;
        while (true) {
            if (i >= s.length()) throw err("unterminated string");
            char c = s.charAt(i);
            if (c == '"') {
                String out = sb == null ? s.substring(st, i) : sb.append(s, st, i).toString();
                i++;
                return out;
            }
            if (c < 0x20) throw err("control character in string");
            if (c == '\\') {
                if (sb == null) sb = new StringBuilder();
                sb.append(s, st, i);
                i++;
                if (i >= s.length()) throw err("unterminated escape");
                char e = s.charAt(i++);
                switch (e) {
                    case '"' -> sb.append('"');
                    case '\\' -> sb.append('\\');
                    case '/' -> sb.append('/');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'n' -> sb.append('\n');
                    case 'r' -> sb.append('\r');
                    case 't' -> sb.append('\t');
                    case 'u' -> {
                        if (i + 4 > s.length()) throw err("bad \\u escape");
                        int v = 0;
                        for (int k = 0; k < 4; k++) {
                            int d = Character.digit(s.charAt(i + k), 16);
                            if (d < 0) throw err("bad \\u escape");
                            v = v * 16 + d;
                        }
                        i += 4;
                        sb.append((char) v);
                    }
                    default -> throw err("bad escape \\" + e);
                }
                st = i;
            } else {
                i++;
            }
        }
    }

    // ------------------------------------------------------------------ writing

    /** Python {@code json.dumps(v, ensure_ascii=False)}. */
    public static String dumpsPython(Object v) {
        StringBuilder sb = new StringBuilder();
        write(sb, v, true);
        return sb.toString();
    }

    /** Compact JSON (separators "," and ":"), numbers as written. */
    public static String dumpsCompact(Object v) {
        StringBuilder sb = new StringBuilder();
        write(sb, v, false);
        return sb.toString();
    }

    /** A JSON string literal, Python style (used for both writers: they escape the same way). */
    public static String quote(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 2);
        quote(sb, s);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v, boolean python) {
        if (v == null || v == NULL) {
            sb.append("null");
        } else if (v instanceof String str) {
            quote(sb, str);
        } else if (v instanceof Boolean b) {
            sb.append(b ? "true" : "false");
        } else if (v instanceof Num n) {
            sb.append(python ? pythonNumber(n) : n.literal());
        } else if (v instanceof Map<?, ?> m) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (!first) sb.append(python ? ", " : ",");
                first = false;
                quote(sb, String.valueOf(e.getKey()));
                sb.append(python ? ": " : ":");
                write(sb, e.getValue(), python);
            }
            sb.append('}');
        } else if (v instanceof List<?> l) {
            sb.append('[');
            for (int k = 0; k < l.size(); k++) {
                if (k > 0) sb.append(python ? ", " : ",");
                write(sb, l.get(k), python);
            }
            sb.append(']');
        } else if (v instanceof Number num) {
            sb.append(python ? pythonNumber(new Num(num.toString())) : num.toString());
        } else {
            throw new IllegalArgumentException("not a JSON value: " + v.getClass());
        }
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }

    /** Python's int() / repr(float()) of a JSON number literal. */
    static String pythonNumber(Num n) {
        String lit = n.literal();
        if (n.isInteger()) return new BigInteger(lit).toString();
        double d = Double.parseDouble(lit);
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
        // shortest round-trip digits (Java's Double.toString is shortest since JDK 19)
        BigDecimal bd = new BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int decpt = digits.length() - bd.scale(); // value = 0.digits * 10^decpt
        StringBuilder out = new StringBuilder();
        if (d < 0) out.append('-');
        if (decpt > 16 || decpt < -3) {
            out.append(digits.charAt(0));
            if (digits.length() > 1) out.append('.').append(digits, 1, digits.length());
            int exp = decpt - 1;
            out.append('e').append(exp < 0 ? '-' : '+');
            int a = Math.abs(exp);
            if (a < 10) out.append('0');
            out.append(a);
        } else if (decpt <= 0) {
            out.append("0.");
            out.append("0".repeat(-decpt)).append(digits);
        } else if (decpt >= digits.length()) {
            out.append(digits).append("0".repeat(decpt - digits.length())).append(".0");
        } else {
            out.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
        }
        return out.toString();
    }
}
