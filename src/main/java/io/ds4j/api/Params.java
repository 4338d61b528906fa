package io.ds4j.api;

import java.util.ArrayList;
import java.util.List;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ObjectNode;

/** Typed, validated access to a JSON request body; every failure is a 400 naming the field. */
final class Params {
    static final JsonMapper JSON = JsonMapper.builder().build();

    final ObjectNode root;

    private Params(ObjectNode root) {
        this.root = root;
    }

    static Params parse(String body) {
        if (body == null || body.isBlank()) throw ApiException.invalid(null, "the request body is empty (expected a JSON object)");
        JsonNode n;
        try {
            n = JSON.readTree(body);
        } catch (JacksonException e) {
            throw ApiException.invalid(null, "invalid_json", "the request body is not valid JSON: " + e.getOriginalMessage());
        }
        if (!(n instanceof ObjectNode o)) throw ApiException.invalid(null, "the request body must be a JSON object");
        return new Params(o);
    }

    JsonNode get(String name) {
        JsonNode n = root.get(name);
        return n == null || n.isNull() ? null : n;
    }

    boolean has(String name) {
        return get(name) != null;
    }

    String string(String name) {
        JsonNode n = get(name);
        if (n == null) return null;
        if (!n.isString()) throw ApiException.invalid(name, "'" + name + "' must be a string");
        return n.stringValue();
    }

    Boolean bool(String name) {
        JsonNode n = get(name);
        if (n == null) return null;
        if (!n.isBoolean()) throw ApiException.invalid(name, "'" + name + "' must be a boolean");
        return n.booleanValue();
    }

    boolean bool(String name, boolean dflt) {
        Boolean b = bool(name);
        return b == null ? dflt : b;
    }

    Integer integer(String name, long min, long max) {
        JsonNode n = get(name);
        if (n == null) return null;
        if (!n.isIntegralNumber() || !n.canConvertToLong()) throw ApiException.invalid(name, "'" + name + "' must be an integer");
        long v = n.longValue();
        if (v < min || v > max) {
            throw ApiException.invalid(name, "'" + name + "' must be between " + min + " and " + max + " (got " + v + ")");
        }
        return (int) v;
    }

    Long int64(String name) {
        JsonNode n = get(name);
        if (n == null) return null;
        if (!n.isIntegralNumber() || !n.canConvertToLong()) throw ApiException.invalid(name, "'" + name + "' must be an integer");
        return n.longValue();
    }

    Double number(String name, double min, double max) {
        JsonNode n = get(name);
        if (n == null) return null;
        if (!n.isNumber()) throw ApiException.invalid(name, "'" + name + "' must be a number");
        double v = n.doubleValue();
        if (!(v >= min && v <= max)) {
            throw ApiException.invalid(name, "'" + name + "' must be between " + min + " and " + max + " (got " + v + ")");
        }
        return v;
    }

    /** At most this many logit_bias entries (OpenAI documents no limit; this bounds the work). */
    static final int MAX_LOGIT_BIAS = 1024;

    /**
     * "logit_bias": an object mapping token ids (as strings, OpenAI's shape)
     * to biases in [-100, 100]. Ids are checked against the vocabulary later,
     * once the model is known.
     */
    java.util.SortedMap<Integer, Float> logitBias() {
        JsonNode n = get("logit_bias");
        var out = new java.util.TreeMap<Integer, Float>();
        if (n == null) return out;
        if (!n.isObject()) throw ApiException.invalid("logit_bias", "'logit_bias' must be an object of token id: bias");
        if (n.size() > MAX_LOGIT_BIAS) {
            throw ApiException.invalid("logit_bias", "'logit_bias' may hold at most " + MAX_LOGIT_BIAS + " tokens");
        }
        for (var e : n.properties()) {
            String k = e.getKey();
            int id;
            try {
                if (k.isEmpty() || k.length() > 10 || !k.chars().allMatch(c -> c >= '0' && c <= '9')) throw new NumberFormatException();
                long v = Long.parseLong(k);
                if (v > Integer.MAX_VALUE) throw new NumberFormatException();
                id = (int) v;
            } catch (NumberFormatException ex) {
                throw ApiException.invalid("logit_bias", "'logit_bias' keys must be token ids (got \"" + k + "\")");
            }
            JsonNode b = e.getValue();
            if (!b.isNumber() || !(b.doubleValue() >= -100 && b.doubleValue() <= 100)) {
                throw ApiException.invalid("logit_bias", "the bias of token " + k + " must be a number between -100 and 100");
            }
            out.put(id, (float) b.doubleValue());
        }
        return out;
    }

    /** "stop": a string or an array of up to 16 non-empty strings. */
    List<String> stop() {
        JsonNode n = get("stop");
        List<String> out = new ArrayList<>();
        if (n == null) return out;
        if (n.isString()) {
            if (!n.stringValue().isEmpty()) out.add(n.stringValue());
            return out;
        }
        if (!n.isArray()) throw ApiException.invalid("stop", "'stop' must be a string or an array of strings");
        if (n.size() > 16) throw ApiException.invalid("stop", "'stop' may hold at most 16 strings");
        for (JsonNode s : n) {
            if (!s.isString()) throw ApiException.invalid("stop", "'stop' must be a string or an array of strings");
            if (!s.stringValue().isEmpty()) out.add(s.stringValue());
        }
        return out;
    }

    /** Rejects a field whose value differs from the only one supported. */
    void onlyDefault(String name, Object allowed, String why) {
        JsonNode n = get(name);
        if (n == null) return;
        boolean ok = allowed instanceof Boolean b ? n.isBoolean() && n.booleanValue() == b
                : allowed instanceof Integer i ? n.isIntegralNumber() && n.longValue() == i
                : false;
        if (!ok) throw ApiException.invalid(name, "unsupported_value", "'" + name + "' = " + n + " is not supported: " + why);
    }
}
