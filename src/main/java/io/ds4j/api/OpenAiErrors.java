package io.ds4j.api;

import io.ds4j.engine.CancelledException;
import io.ds4j.engine.ContextOverflowException;
import io.ds4j.engine.EngineException;
import io.ds4j.engine.NativeLibraryException;
import io.ds4j.scheduler.QueueFullException;
import org.springframework.http.HttpStatus;
import org.springframework.web.server.MethodNotAllowedException;
import org.springframework.web.server.ResponseStatusException;
import org.springframework.web.server.ServerWebInputException;
import org.springframework.web.server.UnsupportedMediaTypeStatusException;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/** Maps any failure to an OpenAI-shaped error (status + JSON body). */
public final class OpenAiErrors {
    private OpenAiErrors() {}

    public static ApiException toApi(Throwable t) {
        if (t instanceof ApiException a) return a;
        if (t instanceof QueueFullException q) {
            return new ApiException(HttpStatus.TOO_MANY_REQUESTS, "rate_limit_error", null, "queue_full", q.getMessage());
        }
        if (t instanceof ContextOverflowException c) return ApiException.contextLength(c.getMessage());
        if (t instanceof CancelledException c) {
            return new ApiException(HttpStatus.SERVICE_UNAVAILABLE, "server_error", null, "cancelled", c.getMessage());
        }
        if (t instanceof EngineException e) {
            if (e.code() == EngineException.INVALID_ARGUMENT) {
                return new ApiException(HttpStatus.BAD_REQUEST, "invalid_request_error", null, "invalid_argument", e.getMessage());
            }
            if (e.code() == EngineException.STATE) return ApiException.notReady(e.getMessage());
            if (e.code() == EngineException.COMM) {
                // a rank died, stalled or diverged: the cluster cannot serve until it is restarted
                return new ApiException(HttpStatus.SERVICE_UNAVAILABLE, "server_error", null, "cluster_unavailable",
                        "the expert-parallel cluster failed: " + e.getMessage());
            }
            return new ApiException(HttpStatus.INTERNAL_SERVER_ERROR, "server_error", null,
                    "engine_" + EngineException.codeName(e.code()), "engine error: " + e.getMessage());
        }
        if (t instanceof NativeLibraryException n) {
            return new ApiException(HttpStatus.SERVICE_UNAVAILABLE, "server_error", null, "engine_unavailable", n.getMessage());
        }
        if (t instanceof ServerWebInputException s) {
            return ApiException.invalid(null, "invalid_request: " + s.getReason());
        }
        if (t instanceof MethodNotAllowedException m) {
            return new ApiException(HttpStatus.METHOD_NOT_ALLOWED, "invalid_request_error", null, "method_not_allowed",
                    "method " + m.getHttpMethod() + " is not allowed here");
        }
        if (t instanceof UnsupportedMediaTypeStatusException u) {
            return new ApiException(HttpStatus.UNSUPPORTED_MEDIA_TYPE, "invalid_request_error", null, null,
                    "unsupported content type " + u.getContentType() + " (send application/json)");
        }
        if (t instanceof ResponseStatusException r) {
            HttpStatus st = HttpStatus.resolve(r.getStatusCode().value());
            if (st == HttpStatus.NOT_FOUND) {
                return new ApiException(st, "invalid_request_error", null, "unknown_url", "unknown URL");
            }
            return new ApiException(st == null ? HttpStatus.INTERNAL_SERVER_ERROR : st,
                    st != null && st.is4xxClientError() ? "invalid_request_error" : "server_error", null, null,
                    r.getReason() == null ? r.getStatusCode().toString() : r.getReason());
        }
        return new ApiException(HttpStatus.INTERNAL_SERVER_ERROR, "server_error", null, null,
                "internal error: " + t.getClass().getSimpleName() + (t.getMessage() == null ? "" : ": " + t.getMessage()));
    }

    /** {"error":{"message","type","param","code"}} */
    public static ObjectNode body(ApiException e) {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        ObjectNode err = root.putObject("error");
        err.put("message", e.getMessage());
        err.put("type", e.type());
        if (e.param() == null) err.putNull("param"); else err.put("param", e.param());
        if (e.code() == null) err.putNull("code"); else err.put("code", e.code());
        return root;
    }
}
