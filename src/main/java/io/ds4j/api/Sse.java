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

    /** A named event ("event: NAME\ndata: {json}\n\n"), as the Anthropic and Responses streams are written. */
    public static String event(String name, String json) {
        if (name.indexOf('\n') >= 0 || name.indexOf('\r') >= 0) throw new IllegalArgumentException("SSE event name must be one line");
        return "event: " + name + "\n" + data(json);
    }

    public static String comment(String text) {
        return ": " + text.replace('\n', ' ').replace('\r', ' ') + "\n\n";
    }
}
