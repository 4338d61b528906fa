package io.ds4j.grammar;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Random schemas of the supported subset, random generation under them: a byte-level walk that only
 * takes bytes the recogniser accepts (preferring bytes that close things, so walks end) must never reach
 * a dead end, and every document it completes must parse and satisfy the independent tree validator of
 * {@link JsonSchemaTest}.
 */
class SchemaPropertiesTest {
    static final JsonNodeFactory F = JsonNodeFactory.instance;
    static final String[] NAMES = {"a", "b", "id", "name", "é", "x y", "tags"};

    static ObjectNode randomSchema(Random r, int depth) {
        ObjectNode s = F.objectNode();
        int k = depth > 2 ? r.nextInt(6) : r.nextInt(9);
        switch (k) {
            case 0 -> s.put("type", "string");
            case 1 -> {
                s.put("type", "string");
                int min = r.nextInt(3);
                s.put("minLength", min).put("maxLength", min + r.nextInt(4));
            }
            case 2 -> s.put("type", r.nextBoolean() ? "integer" : "number");
            case 3 -> s.put("type", r.nextBoolean() ? "boolean" : "null");
            case 4 -> {
                ArrayNode e = s.putArray("enum");
                for (int i = 0, n = 1 + r.nextInt(4); i < n; i++) {
                    switch (r.nextInt(4)) {
                        case 0 -> e.add(NAMES[r.nextInt(NAMES.length)]);
                        case 1 -> e.add(r.nextInt(30) - 5);
                        case 2 -> e.add(r.nextBoolean());
                        default -> e.addNull();
                    }
                }
            }
            case 5 -> {
                ArrayNode t = s.putArray("type");
                t.add("string").add("null");
            }
            case 6 -> {
                s.put("type", "array");
                s.set("items", randomSchema(r, depth + 1));
                int min = r.nextInt(2);
                s.put("minItems", min);
                if (r.nextBoolean()) s.put("maxItems", min + r.nextInt(3));
            }
            case 7 -> {
                ArrayNode any = s.putArray("anyOf");
                any.add(randomObject(r, depth + 1));
                any.add(F.objectNode().put("type", "null"));
            }
            default -> {
                return randomObject(r, depth + 1);
            }
        }
        return s;
    }

    static ObjectNode randomObject(Random r, int depth) {
        ObjectNode s = F.objectNode().put("type", "object");
        if (r.nextInt(5) == 0) { // free object
            if (r.nextBoolean()) s.set("additionalProperties", randomSchema(r, depth + 1));
            return s;
        }
        ObjectNode props = s.putObject("properties");
        ArrayNode req = s.putArray("required");
        for (int i = 0, n = 1 + r.nextInt(4); i < n; i++) {
            String name = NAMES[r.nextInt(NAMES.length)] + (r.nextBoolean() ? "" : i);
            if (props.has(name)) continue;
            props.set(name, randomSchema(r, depth + 1));
            if (r.nextBoolean()) req.add(name);
        }
        s.put("additionalProperties", false);
        return s;
    }

    /** Bytes that tend to finish a document: closers, separators, short literals' letters, digits. */
    static final byte[] CLOSERS = "}]\",:0123456789nulltrefas".getBytes(StandardCharsets.US_ASCII);
    static final byte[] OTHERS;

    static {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        for (int b = 0; b < 256; b++) o.write(b);
        OTHERS = o.toByteArray();
    }

    @Property(tries = 400)
    void walksUnderRandomSchemasEndInValidDocuments(@ForAll long seed) {
        Random r = new Random(seed);
        ObjectNode schema = randomObject(r, 0);
        JsonSchema compiled = JsonSchema.compile(schema);
        SchemaRecognizer rec = new SchemaRecognizer(compiled);
        SchemaRecognizer trial = new SchemaRecognizer(compiled);
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (int step = 0; step < 3000 && !rec.complete(); step++) {
            List<Integer> ok = new ArrayList<>();
            byte[] pool = r.nextInt(4) == 0 ? OTHERS : CLOSERS;
            for (byte b : pool) {
                trial.copyFrom(rec);
                if (trial.feed(b & 0xff)) ok.add(b & 0xff);
            }
            if (ok.isEmpty() && pool == CLOSERS) {
                for (byte b : OTHERS) {
                    trial.copyFrom(rec);
                    if (trial.feed(b & 0xff)) ok.add(b & 0xff);
                }
            }
            assertThat(ok).as("dead end under %s after '%s'", schema, text.toString(StandardCharsets.UTF_8)).isNotEmpty();
            int b = ok.get(r.nextInt(ok.size()));
            assertThat(rec.feed(b)).isTrue();
            text.write(b);
        }
        if (!rec.complete()) return; // long walk: nothing to check but the absence of dead ends
        String doc = text.toString(StandardCharsets.UTF_8);
        JsonNode d = JsonSyntaxTest.JSON.readTree(doc);
        assertThat(JsonSchemaTest.Validator.valid(schema, d, schema)).as("%s\nunder %s", doc, schema).isTrue();
    }
}
