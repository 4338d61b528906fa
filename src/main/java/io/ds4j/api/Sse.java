package io.ds4j.api;

/**
 * Server-sent events exactly as OpenAI writes them: "data: {json}\n\n" per
 * event, "data: [DONE]\n\n" at the end, comments (": keep-alive\n\n") to keep
 * idle connections open.
 */
public final class Sse {
    public static final String DONE = "data: [DONE]\n\n";
    public static final String KEEP_ALIVE = ": keep-alive\n\n";

    private Sse() {}

    /** One data event; the payload must be a single line (compact JSON is). */
    public static String data(String json) {
        if (json.indexOf('\n') >= 0 || json.indexOf('\r') >= 0) {
            throw new IllegalArgumentException("SSE data must be one line");
        }
        return "data: " + json + "\n\n";
    }

    public static String comment(String text) {
        return ": " + text.replace('\n', ' ').replace('\r', ' ') + "\n\n";
    }
}
