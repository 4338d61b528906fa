package io.ds4j.grammar;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.chat.ChatRenderer;
import io.ds4j.tokenizer.TestTokenizers;
import io.ds4j.tokenizer.Tokenizer;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/**
 * Schema mode: the compiler refuses what it cannot enforce, the recogniser accepts exactly the documents
 * that match (hand-picked cases), and random walks over the real vocabulary end in documents that an
 * independent tree validator (below) accepts.
 */
public class JsonSchemaTest {
    static final String PERSON = """
            {"$defs": {"Address": {"title": "Address", "type": "object",
                 "properties": {"city": {"type": "string", "minLength": 1},
                                "zip": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null}},
                 "required": ["city"]}},
             "title": "Person", "type": "object",
             "properties": {"name": {"type": "string", "maxLength": 5, "description": "short"},
                            "age": {"type": "integer"},
                            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1, "maxItems": 2},
                            "address": {"$ref": "#/$defs/Address"},
                            "ok": {"type": "boolean"},
                            "score": {"type": ["number", "null"]},
                            "extra": {}},
             "required": ["name", "age", "tags", "address"], "additionalProperties": false}
            """;
    static final String LIST = """
            {"$defs": {"N": {"type": "object", "properties": {"v": {"type": "integer"},
                 "next": {"anyOf": [{"$ref": "#/$defs/N"}, {"type": "null"}]}}, "required": ["v", "next"]}},
             "$ref": "#/$defs/N"}
            """;

    static JsonSchema schema(String json) {
        return JsonSchema.compile(JsonSyntaxTest.JSON.readTree(json));
    }

    static boolean accepts(JsonSchema s, String doc) {
        SchemaRecognizer r = new SchemaRecognizer(s);
        return r.feed(doc.getBytes(StandardCharsets.UTF_8)) && r.complete();
    }

    @Test
    void refusesWhatItCannotEnforceNamingIt() {
        for (String[] c : new String[][] {
                {"{\"type\":\"string\",\"pattern\":\"^a\"}", "pattern"},
                {"{\"type\":\"integer\",\"minimum\":0}", "minimum"},
                {"{\"anyOf\":[{\"type\":\"string\"},{\"enum\":[\"x\"]}]}", "alternatives"},
                {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "alternatives"},
                {"{\"$ref\":\"http://example.com/s.json\"}", "local references"},
                {"{\"$ref\":\"#/$defs/Missing\"}", "not defined"},
                {"{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":3}]}", "allOf"},
                {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "required"},
                {"{\"type\":\"tuple\"}", "unknown type"},
                {"{\"type\":\"array\",\"items\":[{}]}", "tuples"},
                {"{\"$defs\":{\"L\":{\"$ref\":\"#/$defs/L\"}},\"$ref\":\"#/$defs/L\"}", "accepts no value"},
                {"false", "accepts nothing"},
                {"[]", "must be a JSON object"}}) {
            assertThatThrownBy(() -> schema(c[0])).as(c[0]).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining(c[1]);
        }
    }

    @Test
    void acceptsExactlyTheMatchingDocuments() {
        JsonSchema s = schema(PERSON);
        for (String ok : List.of(
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\"],\"address\":{\"city\":\"X\"}}",
                "{\"name\":\"\",\"age\":-7,\"tags\":[\"b\",\"a\"],\"address\":{\"city\":\"Zürich\",\"zip\":null},\"ok\":false}",
                "{\n  \"name\": \"éé\",\n  \"age\": 0,\n  \"tags\": [ \"a\" ],\n  \"address\": {\"city\": \"\\n\", \"zip\": \"8000\"},"
                        + "\n  \"score\": 1.5e3, \"extra\": {\"any\": [1, {\"x\": null}]}\n}",
                "{\"name\":\"Bob\",\"age\":1,\"tags\":[\"a\"],\"address\":{\"city\":\"X\"},\"score\":null}")) {
            assertThat(accepts(s, ok)).as(ok).isTrue();
            assertThat(Validator.valid(JsonSyntaxTest.JSON.readTree(PERSON), JsonSyntaxTest.JSON.readTree(ok),
                    JsonSyntaxTest.JSON.readTree(PERSON))).as("validator agrees: " + ok).isTrue();
            // every proper prefix is a live prefix, complete only at the end
            byte[] b = ok.getBytes(StandardCharsets.UTF_8);
            SchemaRecognizer r = new SchemaRecognizer(s);
            for (int i = 0; i < b.length; i++) {
                assertThat(r.complete()).isFalse();
                assertThat(r.feed(b[i] & 0xff)).as("%s at %d", ok, i).isTrue();
            }
        }
        for (String bad : List.of(
                "{\"age\":42,\"name\":\"Bob\",\"tags\":[\"a\"],\"address\":{\"city\":\"X\"}}",         // order
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\"]}",                                      // missing required
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\"],\"address\":{\"city\":\"X\"},\"zz\":1}", // extra key
                "{\"name\":\"Bob\",\"age\":4.2,\"tags\":[\"a\"],\"address\":{\"city\":\"X\"}}",        // not an integer
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[],\"address\":{\"city\":\"X\"}}",              // minItems
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\",\"a\",\"b\"],\"address\":{\"city\":\"X\"}}", // maxItems
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"c\"],\"address\":{\"city\":\"X\"}}",         // enum
                "{\"name\":\"Bobbyy\",\"age\":42,\"tags\":[\"a\"],\"address\":{\"city\":\"X\"}}",      // maxLength
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\"],\"address\":{\"city\":\"\"}}",          // minLength
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\"],\"address\":{\"city\":\"X\",\"zip\":5}}", // zip type
                "{\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\"],\"address\":{\"city\":\"X\"},\"ok\":1}", // boolean
                " {\"name\":\"Bob\",\"age\":42,\"tags\":[\"a\"],\"address\":{\"city\":\"X\"}}")) {     // leading space
            assertThat(accepts(s, bad)).as(bad).isFalse();
        }
        JsonSchema list = schema(LIST);
        assertThat(accepts(list, "{\"v\":1,\"next\":{\"v\":2,\"next\":null}}")).isTrue();
        assertThat(accepts(list, "{\"v\":1,\"next\":{\"v\":2}}")).isFalse();
        JsonSchema top = schema("{\"enum\":[1, 12, \"x\", [1,2], {\"k\":true}]}");
        for (String ok : List.of("1", "12", "\"x\"", "[1,2]", "{\"k\":true}")) assertThat(accepts(top, ok)).as(ok).isTrue();
        for (String bad : List.of("2", "123", "\"y\"", "[1, 2]")) assertThat(accepts(top, bad)).as(bad).isFalse();
    }

    // ---- random walks over the real vocabulary, checked by the tree validator

    static final Tokenizer TOK = TestTokenizers.real();
    static final JsonVocabulary VOCAB = new JsonVocabulary(TOK, TOK.vocabSize(), ChatRenderer.END_THINK);

    static String walk(JsonSchema s, long seed, int maxSteps) {
        Random rnd = new Random(seed);
        JsonConstraint c = new JsonConstraint(VOCAB, new SchemaRecognizer(s), false);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (int step = 0; step < maxSteps; step++) {
            byte[] bits = c.allowedNext();
            List<Integer> ids = new ArrayList<>();
            for (int id = 0; id < TOK.vocabSize(); id++) if ((bits[id >> 3] >> (id & 7) & 1) != 0) ids.add(id);
            assertThat(ids).as("dead end after %s", text).isNotEmpty();
            if (c.complete()) {
                assertThat(ids).containsExactly(TOK.eosId());
                return text.toString(StandardCharsets.UTF_8);
            }
            int pick = ids.get(rnd.nextInt(ids.size()));
            if (rnd.nextDouble() < 0.7) { // prefer short tokens that close things, so walks end
                List<Integer> closers = ids.stream().filter(id -> {
                    byte[] b = TOK.tokenBytes(id);
                    return b.length == 1 && (b[0] == '}' || b[0] == ']' || b[0] == '"' || b[0] == ',' || b[0] == 'n'
                            || b[0] == '1');
                }).toList();
                if (!closers.isEmpty()) pick = closers.get(rnd.nextInt(closers.size()));
            }
            c.accept(pick);
            text.writeBytes(TOK.tokenBytes(pick));
        }
        return null;
    }

    @Test
    void randomWalksEndInDocumentsTheValidatorAccepts() {
        for (String src : List.of(PERSON, LIST)) {
            JsonSchema s = schema(src);
            JsonNode schemaJson = JsonSyntaxTest.JSON.readTree(src);
            int finished = 0;
            for (long seed = 1; seed <= 8; seed++) {
                String doc = walk(s, seed, 400);
                if (doc == null) continue;
                finished++;
                JsonNode d = JsonSyntaxTest.JSON.readTree(doc);
                assertThat(Validator.valid(schemaJson, d, schemaJson)).as(doc).isTrue();
            }
            assertThat(finished).as("walks that finished").isGreaterThanOrEqualTo(4);
        }
    }

    /** An independent validator of the supported subset over parsed trees (code points for lengths). */
    public static final class Validator {
        public static boolean valid(JsonNode s, JsonNode v, JsonNode root) {
            if (s.isBoolean()) return s.booleanValue();
            if (s.has("$ref")) {
                String[] p = s.get("$ref").asString().substring(2).split("/", 2);
                return valid(root.get(p[0]).get(p[1]), v, root);
            }
            if (s.has("const")) return s.get("const").equals(v);
            if (s.has("enum")) {
                for (JsonNode e : s.get("enum")) if (e.equals(v)) return true;
                return false;
            }
            for (String k : List.of("anyOf", "oneOf")) {
                if (s.has(k)) {
                    int n = 0;
                    for (JsonNode a : s.get(k)) if (valid(a, v, root)) n++;
                    return k.equals("anyOf") ? n > 0 : n == 1;
                }
            }
            if (s.has("allOf")) return valid(s.get("allOf").get(0), v, root);
            JsonNode t = s.get("type");
            if (t != null) {
                boolean any = false;
                for (JsonNode x : t.isArray() ? t : List.of(t)) any |= hasType(x.asString(), v);
                if (!any) return false;
            }
            if (v.isObject()) {
                JsonNode props = s.get("properties");
                JsonNode addl = s.get("additionalProperties");
                if (s.has("required")) for (JsonNode r : s.get("required")) if (!v.has(r.asString())) return false;
                for (var e : v.properties()) {
                    JsonNode ps = props == null ? null : props.get(e.getKey());
                    if (ps != null) {
                        if (!valid(ps, e.getValue(), root)) return false;
                    } else if (addl != null && !(addl.isBoolean() && addl.booleanValue()) && !(addl.isObject() && valid(addl, e.getValue(), root))) {
                        return false;
                    }
                }
            }
            if (v.isArray()) {
                if (s.has("minItems") && v.size() < s.get("minItems").intValue()) return false;
                if (s.has("maxItems") && v.size() > s.get("maxItems").intValue()) return false;
                if (s.has("items")) for (JsonNode x : v) if (!valid(s.get("items"), x, root)) return false;
            }
            if (v.isString()) {
                int n = v.stringValue().codePointCount(0, v.stringValue().length());
                if (s.has("minLength") && n < s.get("minLength").intValue()) return false;
                if (s.has("maxLength") && n > s.get("maxLength").intValue()) return false;
            }
            return true;
        }

        static boolean hasType(String t, JsonNode v) {
            return switch (t) {
                case "object" -> v.isObject();
                case "array" -> v.isArray();
                case "string" -> v.isString();
                case "integer" -> v.isIntegralNumber() || (v.isNumber() && v.decimalValue().stripTrailingZeros().scale() <= 0);
                case "number" -> v.isNumber();
                case "boolean" -> v.isBoolean();
                case "null" -> v.isNull();
                default -> false;
            };
        }
    }
}
