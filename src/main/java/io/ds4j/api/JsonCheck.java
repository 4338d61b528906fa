package io.ds4j.api;

import io.ds4j.grammar.JsonSchema;
import tools.jackson.databind.JsonNode;

/** The response_format field of chat requests. */
final class JsonCheck {
    private JsonCheck() {}

    enum Kind { TEXT, JSON_OBJECT, JSON_SCHEMA }

    /** The requested format; {@code schema} is set for JSON_SCHEMA. */
    record ResponseFormat(Kind kind, JsonSchema schema) {
        static final ResponseFormat TEXT = new ResponseFormat(Kind.TEXT, null);

        boolean constrained() {
            return kind != Kind.TEXT;
        }
    }

    static ResponseFormat responseFormat(Params p) {
        JsonNode rf = p.get("response_format");
        if (rf == null) return ResponseFormat.TEXT;
        if (!rf.isObject()) throw ApiException.invalid("response_format", "'response_format' must be an object");
        String type = rf.path("type").asString("");
        return switch (type) {
            case "text" -> ResponseFormat.TEXT;
            case "json_object" -> new ResponseFormat(Kind.JSON_OBJECT, null);
            case "json_schema" -> new ResponseFormat(Kind.JSON_SCHEMA, schema(rf.get("json_schema"), "response_format.json_schema"));
            default -> throw ApiException.invalid("response_format", "unsupported_value", "response_format type '" + type
                    + "' is not supported (supported: 'text', 'json_object', 'json_schema')");
        };
    }

    /**
     * The Responses API's text.format: {"type":"text"}, {"type":"json_object"} or
     * {"type":"json_schema","name":...,"schema":{...},"strict":...} (the schema beside the type, not nested).
     */
    static ResponseFormat textFormat(JsonNode format, String param) {
        if (format == null || format.isNull()) return ResponseFormat.TEXT;
        if (!format.isObject()) throw ApiException.invalid(param, "'" + param + "' must be an object");
        String type = format.path("type").asString("");
        return switch (type) {
            case "text" -> ResponseFormat.TEXT;
            case "json_object" -> new ResponseFormat(Kind.JSON_OBJECT, null);
            case "json_schema" -> new ResponseFormat(Kind.JSON_SCHEMA, schema(format, param));
            default -> throw ApiException.invalid(param, "unsupported_value", param + " type '" + type
                    + "' is not supported (supported: 'text', 'json_object', 'json_schema')");
        };
    }

    private static JsonSchema schema(JsonNode js, String param) {
        if (js == null || !js.isObject()) {
            throw ApiException.invalid(param, "'" + param + "' must be an object with a 'schema'");
        }
        JsonNode name = js.get("name");
        if (name != null && !name.isNull() && !name.isString()) {
            throw ApiException.invalid(param + ".name", "'name' must be a string");
        }
        JsonNode schema = js.get("schema");
        if (schema == null || schema.isNull()) {
            throw ApiException.invalid(param + ".schema", "'" + param + ".schema' is required");
        }
        try {
            return JsonSchema.compile(schema);
        } catch (IllegalArgumentException e) {
            throw ApiException.invalid(param + ".schema", "unsupported_value", "schema " + e.getMessage());
        }
    }
}
