package io.ds4j.api;

import tools.jackson.databind.JsonNode;

/** The response_format field of chat requests. */
final class JsonCheck {
    private JsonCheck() {}

    enum ResponseFormat { TEXT, JSON_OBJECT }

    static ResponseFormat responseFormat(Params p) {
        JsonNode rf = p.get("response_format");
        if (rf == null) return ResponseFormat.TEXT;
        if (!rf.isObject()) throw ApiException.invalid("response_format", "'response_format' must be an object");
        String type = rf.path("type").asString("");
        return switch (type) {
            case "text" -> ResponseFormat.TEXT;
            case "json_object" -> ResponseFormat.JSON_OBJECT;
            default -> throw ApiException.invalid("response_format", "unsupported_value", "response_format type '" + type
                    + "' is not supported (supported: 'text', 'json_object'; JSON schemas are not enforced)");
        };
    }
}
