package io.ds4j.grammar;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * A JSON Schema compiled for constrained decoding ({@code response_format: {"type": "json_schema"}}): a graph
 * of nodes that {@link SchemaRecognizer} walks byte by byte. The supported subset is what generation can
 * enforce exactly, and a schema using anything else is refused with the keyword named, never silently
 * ignored:
 * <ul>
 *   <li>{@code type} (one or an array), {@code enum}, {@code const}, {@code anyOf}/{@code oneOf} whose
 *       alternatives start with different JSON kinds (object, array, string, number, boolean, null — so the
 *       first byte decides, e.g. {@code Optional[X]}), {@code allOf} with one element, local {@code $ref}
 *       to {@code #/$defs/...} or {@code #/definitions/...} (recursion allowed);</li>
 *   <li>objects: {@code properties} (written in the declared order; optional ones may be left out),
 *       {@code required}, {@code additionalProperties} (false, or a schema for objects without declared
 *       properties; declared properties are never followed by extra ones);</li>
 *   <li>arrays: {@code items}, {@code minItems}, {@code maxItems}; strings: {@code minLength},
 *       {@code maxLength} (characters); {@code integer} has no fraction or exponent;</li>
 *   <li>annotations are ignored: {@code title}, {@code description}, {@code default}, {@code examples},
 *       {@code format} (an annotation in JSON Schema 2020-12), {@code $schema}, {@code $id}, ...</li>
 * </ul>
 * Not supported (400): {@code pattern}, numeric bounds, {@code multipleOf}, {@code prefixItems},
 * {@code uniqueItems}, {@code not}, {@code if}/{@code then}, ambiguous unions, remote refs.
 */
public final class JsonSchema {
    static final int UNION = 0, OBJECT = 1, FREE_OBJECT = 2, ARRAY = 3, STRING = 4, NUMBER = 5, INTEGER = 6, LITERALS = 7;
    /** First-byte classes: '{', '[', '"', number, true/false, null. */
    static final int C_OBJ = 0, C_ARR = 1, C_STR = 2, C_NUM = 3, C_BOOL = 4, C_NULL = 5, N_CLASSES = 6;
    static final int MAX_ALTERNATIVES = 64;
    static final int UNBOUNDED = Integer.MAX_VALUE;

    private static final JsonMapper JSON = JsonMapper.builder().build();
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "format",
            "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "$defs", "definitions",
            "contentEncoding", "contentMediaType", "discriminator");
    private static final Set<String> HANDLED = Set.of("type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
            "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "minLength", "maxLength");

    /** One node; fields are used according to {@link #kind}. */
    static final class Node {
        int kind;
        int[] alts;             // UNION: the alternatives (a $ref is a union of one)
        int[] byClass;          // UNION: alternative per first-byte class, -1 = none (after finish())
        String where;           // UNION: schema path, for messages
        byte[][] keys;          // OBJECT: each property name as JSON (with quotes)
        int[] props;            // OBJECT: value node per property
        boolean[] required;     // OBJECT
        int values;             // FREE_OBJECT: node of every value
        int items;              // ARRAY
        int minItems, maxItems; // ARRAY
        int minLength, maxLength = UNBOUNDED; // STRING (characters)
        byte[][] literals;      // LITERALS: compact JSON of each allowed value
    }

    final List<Node> nodes = new ArrayList<>();
    final int root;
    private final JsonNode document;
    private final Map<String, Integer> refs = new HashMap<>();
    private final int any;

    private JsonSchema(JsonNode document) {
        this.document = document;
        this.any = anyNode();
        this.root = compile(document, "#");
        finish();
    }

    /** Any JSON object: OpenAI's json_object mode. */
    public static JsonSchema anyObject() {
        return compile(JSON.readTree("{\"type\":\"object\"}"));
    }

    /** Any JSON value. */
    public static JsonSchema anyValue() {
        return compile(JSON.readTree("{}"));
    }

    /** Compiles a schema; IllegalArgumentException with a message naming the unsupported part. */
    public static JsonSchema compile(JsonNode schema) {
        if (schema == null || !(schema.isObject() || schema.isBoolean())) {
            throw new IllegalArgumentException("the schema must be a JSON object");
        }
        return new JsonSchema(schema);
    }

    Node node(int i) {
        return nodes.get(i);
    }

    private int add(Node n) {
        nodes.add(n);
        return nodes.size() - 1;
    }

    /** ANY: a union over every kind, with free objects and arrays of ANY. */
    private int anyNode() {
        Node u = new Node();
        u.kind = UNION;
        u.byClass = new int[N_CLASSES];
        int id = add(u);
        Node obj = new Node();
        obj.kind = FREE_OBJECT;
        obj.values = id;
        Node arr = new Node();
        arr.kind = ARRAY;
        arr.items = id;
        arr.maxItems = UNBOUNDED;
        Node str = new Node();
        str.kind = STRING;
        Node num = new Node();
        num.kind = NUMBER;
        u.byClass[C_OBJ] = add(obj);
        u.byClass[C_ARR] = add(arr);
        u.byClass[C_STR] = add(str);
        u.byClass[C_NUM] = add(num);
        u.byClass[C_BOOL] = add(literals(List.of("true", "false")));
        u.byClass[C_NULL] = add(literals(List.of("null")));
        u.alts = u.byClass.clone();
        u.where = "any";
        return id;
    }

    private static Node literals(List<String> values) {
        Node n = new Node();
        n.kind = LITERALS;
        n.literals = values.stream().map(v -> v.getBytes(StandardCharsets.UTF_8)).toArray(byte[][]::new);
        return n;
    }

    private static IllegalArgumentException bad(String where, String what) {
        return new IllegalArgumentException(where + ": " + what);
    }

    private int compile(JsonNode s, String where) {
        if (s.isBoolean()) {
            if (s.booleanValue()) return any;
            throw bad(where, "the schema 'false' accepts nothing");
        }
        if (!s.isObject()) throw bad(where, "a schema must be an object");
        for (var e : s.properties()) {
            String k = e.getKey();
            if (!HANDLED.contains(k) && !ANNOTATIONS.contains(k)) {
                throw bad(where, "'" + k + "' is not supported in response_format schemas");
            }
        }
        if (s.has("$ref")) return ref(s, where);
        if (s.has("enum") || s.has("const")) {
            List<String> vals = new ArrayList<>();
            if (s.has("const")) vals.add(JSON.writeValueAsString(s.get("const")));
            else {
                if (!s.get("enum").isArray() || s.get("enum").isEmpty()) throw bad(where, "'enum' must be a non-empty array");
                for (JsonNode v : s.get("enum")) vals.add(JSON.writeValueAsString(v));
            }
            if (vals.size() > MAX_ALTERNATIVES) throw bad(where, "'enum' may list at most " + MAX_ALTERNATIVES + " values");
            return add(literals(vals.stream().distinct().toList()));
        }
        for (String comb : List.of("anyOf", "oneOf")) {
            if (s.has(comb)) {
                JsonNode alts = s.get(comb);
                if (!alts.isArray() || alts.isEmpty()) throw bad(where, "'" + comb + "' must be a non-empty array");
                List<Integer> ids = new ArrayList<>();
                for (int i = 0; i < alts.size(); i++) ids.add(compile(alts.get(i), where + "/" + comb + "/" + i));
                return union(ids, where);
            }
        }
        if (s.has("allOf")) {
            JsonNode all = s.get("allOf");
            if (!all.isArray() || all.size() != 1) throw bad(where, "'allOf' is supported with exactly one schema");
            return compile(all.get(0), where + "/allOf/0");
        }
        JsonNode type = s.get("type");
        if (type == null) {
            if (s.has("properties") || s.has("additionalProperties") || s.has("required")) return object(s, where);
            if (s.has("items")) return array(s, where);
            return any;
        }
        if (type.isArray()) {
            if (type.isEmpty()) throw bad(where, "'type' must not be empty");
            List<Integer> ids = new ArrayList<>();
            for (JsonNode t : type) ids.add(typed(s, t.asString(""), where));
            return union(ids, where);
        }
        return typed(s, type.asString(""), where);
    }

    private int typed(JsonNode s, String type, String where) {
        Node n = new Node();
        switch (type) {
            case "object" -> {
                return object(s, where);
            }
            case "array" -> {
                return array(s, where);
            }
            case "string" -> {
                n.kind = STRING;
                n.minLength = count(s, "minLength", 0, where);
                n.maxLength = count(s, "maxLength", UNBOUNDED, where);
                if (n.minLength > n.maxLength) throw bad(where, "minLength > maxLength");
            }
            case "number" -> n.kind = NUMBER;
            case "integer" -> n.kind = INTEGER;
            case "boolean" -> {
                return add(literals(List.of("true", "false")));
            }
            case "null" -> {
                return add(literals(List.of("null")));
            }
            default -> throw bad(where, "unknown type '" + type + "'");
        }
        return add(n);
    }

    private int object(JsonNode s, String where) {
        JsonNode props = s.get("properties");
        JsonNode addl = s.get("additionalProperties");
        if (props == null || props.isEmpty()) {
            Node n = new Node();
            n.kind = FREE_OBJECT;
            int id = add(n);
            if (addl != null && addl.isBoolean() && !addl.booleanValue()) {
                // no properties at all: only {}
                n.kind = OBJECT;
                n.keys = new byte[0][];
                n.props = new int[0];
                n.required = new boolean[0];
            } else {
                n.values = addl == null || addl.isBoolean() ? any : compile(addl, where + "/additionalProperties");
            }
            return id;
        }
        if (!props.isObject()) throw bad(where, "'properties' must be an object");
        if (props.size() > MAX_ALTERNATIVES) throw bad(where, "at most " + MAX_ALTERNATIVES + " properties per object");
        if (addl != null && !addl.isBoolean()) {
            throw bad(where, "'additionalProperties' with a schema is supported only for objects without 'properties'");
        }
        Node n = new Node();
        n.kind = OBJECT;
        int id = add(n);
        Set<String> req = new java.util.HashSet<>();
        JsonNode r = s.get("required");
        if (r != null) {
            if (!r.isArray()) throw bad(where, "'required' must be an array");
            for (JsonNode x : r) req.add(x.asString(""));
        }
        int k = props.size();
        n.keys = new byte[k][];
        n.props = new int[k];
        n.required = new boolean[k];
        int i = 0;
        for (var e : props.properties()) {
            n.keys[i] = JSON.writeValueAsString(e.getKey()).getBytes(StandardCharsets.UTF_8);
            n.required[i] = req.remove(e.getKey());
            n.props[i] = compile(e.getValue(), where + "/properties/" + e.getKey());
            i++;
        }
        if (!req.isEmpty()) throw bad(where, "required properties " + req + " are not in 'properties'");
        return id;
    }

    private int array(JsonNode s, String where) {
        Node n = new Node();
        n.kind = ARRAY;
        int id = add(n);
        JsonNode items = s.get("items");
        if (items != null && items.isArray()) throw bad(where, "'items' as an array (tuples) is not supported");
        n.items = items == null ? any : compile(items, where + "/items");
        n.minItems = count(s, "minItems", 0, where);
        n.maxItems = count(s, "maxItems", UNBOUNDED, where);
        if (n.minItems > n.maxItems) throw bad(where, "minItems > maxItems");
        return id;
    }

    private static int count(JsonNode s, String key, int dflt, String where) {
        JsonNode v = s.get(key);
        if (v == null) return dflt;
        if (!v.isIntegralNumber() || v.longValue() < 0) throw bad(where, "'" + key + "' must be a non-negative integer");
        return (int) Math.min(v.longValue(), UNBOUNDED);
    }

    private int ref(JsonNode s, String where) {
        String ref = s.get("$ref").asString("");
        Integer done = refs.get(ref);
        if (done != null) return done;
        String[] parts;
        if (ref.startsWith("#/$defs/") || ref.startsWith("#/definitions/")) parts = ref.substring(2).split("/", 2);
        else throw bad(where, "only local references to #/$defs/... or #/definitions/... are supported (got '" + ref + "')");
        JsonNode target = document.path(parts[0]).get(parts[1]);
        if (target == null) throw bad(where, "reference '" + ref + "' is not defined");
        // reserve the node first so that recursive references resolve to it; finish() fills its dispatch
        Node alias = new Node();
        alias.kind = UNION;
        alias.where = ref;
        int id = add(alias);
        refs.put(ref, id);
        alias.alts = new int[] {compile(target, ref)};
        return id;
    }

    private int union(List<Integer> ids, String where) {
        if (ids.size() == 1) return ids.getFirst();
        Node u = new Node();
        u.kind = UNION;
        u.where = where;
        u.alts = ids.stream().mapToInt(Integer::intValue).toArray();
        return add(u);
    }

    /**
     * Fills every union's first-byte dispatch. References can be recursive, so what a union accepts is
     * computed to a fixed point; then each class must be claimed by one alternative only.
     */
    private void finish() {
        for (Node n : nodes) {
            if (n.kind == UNION && n.byClass == null) {
                n.byClass = new int[N_CLASSES];
                java.util.Arrays.fill(n.byClass, -1);
            }
        }
        boolean changed = true;
        while (changed) {
            changed = false;
            for (Node n : nodes) {
                if (n.kind != UNION) continue;
                for (int c = 0; c < N_CLASSES; c++) {
                    if (n.byClass[c] >= 0) continue;
                    for (int alt : n.alts) {
                        if (accepts(alt, c)) {
                            n.byClass[c] = alt;
                            changed = true;
                            break;
                        }
                    }
                }
            }
        }
        for (int i = 0; i < nodes.size(); i++) {
            Node n = nodes.get(i);
            if (n.kind != UNION) continue;
            for (int c = 0; c < N_CLASSES; c++) {
                int claims = 0;
                for (int alt : n.alts) if (accepts(alt, c)) claims++;
                if (claims > 1) {
                    throw bad(n.where, "alternatives that can start the same way (more than one accepts "
                            + CLASS_NAMES[c] + ") are not supported");
                }
                if (n.byClass[c] >= 0) resolve(i, c); // rejects unions that only lead to themselves
            }
        }
        boolean ok = false;
        for (int c = 0; c < N_CLASSES; c++) ok |= accepts(root, c);
        if (!ok) throw bad("#", "the schema accepts no value");
    }

    /** The non-union node a value of class c starts in node id, or -1. */
    int resolve(int id, int c) {
        for (int hops = 0; hops <= nodes.size(); hops++) {
            Node n = nodes.get(id);
            if (n.kind != UNION) return accepts(id, c) ? id : -1;
            id = n.byClass[c];
            if (id < 0) return -1;
        }
        throw bad(nodes.get(id).where, "a reference that only refers to itself");
    }

    private static final String[] CLASS_NAMES = {"an object", "an array", "a string", "a number", "a boolean", "null"};

    /** Can node id start with a byte of class c (unions: as far as finish() has got)? */
    boolean accepts(int id, int c) {
        Node n = nodes.get(id);
        return switch (n.kind) {
            case UNION -> n.byClass != null && n.byClass[c] >= 0;
            case OBJECT, FREE_OBJECT -> c == C_OBJ;
            case ARRAY -> c == C_ARR;
            case STRING -> c == C_STR;
            case NUMBER, INTEGER -> c == C_NUM;
            case LITERALS -> {
                for (byte[] l : n.literals) if (classOf(l[0] & 0xff) == c) yield true;
                yield false;
            }
            default -> false;
        };
    }

    static int classOf(int b) {
        return switch (b) {
            case '{' -> C_OBJ;
            case '[' -> C_ARR;
            case '"' -> C_STR;
            case 't', 'f' -> C_BOOL;
            case 'n' -> C_NULL;
            default -> (b == '-' || (b >= '0' && b <= '9')) ? C_NUM : -1;
        };
    }
}
