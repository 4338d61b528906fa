package io.ds4j.api;

import tools.jackson.databind.JsonNode;

/** Request fields this server accepts only in their default form. */
final class JsonCheck {
    private JsonCheck() {}

    static void responseFormat(Params p) {
        JsonNode rf = p.get("response_format");
        if (rf == null) return;
        String type = rf.path("type").asString("");
        if (!type.equals("text")) {
            throw ApiException.invalid("response_format", "unsupported_value",
                    "response_format type '" + type + "' is not supported (only 'text'; no constrained decoding)");
        }
    }
}
