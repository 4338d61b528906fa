package io.ds4j.api;

import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Errors of the Anthropic Messages endpoints in Anthropic's shape:
 * {"type":"error","error":{"type":...,"message":...}}. The same failures as everywhere else
 * ({@link OpenAiErrors#toApi}), with Anthropic's error types and statuses: 400 invalid_request_error,
 * 401 authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large,
 * 429 rate_limit_error, 500 api_error, and 529 overloaded_error where OpenAI's shape says 503 (no model
 * loaded, shutting down).
 */
public final class AnthropicErrors {
    /** Anthropic's "overloaded" status (not in HttpStatus). */
    public static final int OVERLOADED = 529;

    private AnthropicErrors() {}

    /** Paths answered in this shape. */
    public static boolean anthropicPath(String path) {
        return path.equals("/v1/messages") || path.startsWith("/v1/messages/");
    }

    public static int status(ApiException e) {
        return e.status().value() == 503 ? OVERLOADED : e.status().value();
    }

    public static String type(ApiException e) {
        return switch (status(e)) {
            case 400, 405, 415 -> "invalid_request_error";
            case 401 -> "authentication_error";
            case 403 -> "permission_error";
            case 404 -> "not_found_error";
            case 408 -> "timeout_error";
            case 413 -> "request_too_large";
            case 429 -> "rate_limit_error";
            case OVERLOADED -> "overloaded_error";
            default -> "api_error";
        };
    }

    public static ObjectNode body(ApiException e) {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        root.put("type", "error");
        ObjectNode err = root.putObject("error");
        err.put("type", type(e));
        err.put("message", e.param() == null || e.getMessage().contains(e.param()) ? e.getMessage()
                : e.param() + ": " + e.getMessage());
        return root;
    }
}
