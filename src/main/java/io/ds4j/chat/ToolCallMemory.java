package io.ds4j.chat;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Bounded LRU of the exact DSML text the model generated for its tool calls (tool_call id -> text), so
 * that when a client sends the assistant turn back, {@link ChatRenderer} writes the very bytes that were
 * sampled instead of re-encoding the arguments (which can differ in whitespace, key order or number
 * formatting and would break KV-cache reuse). {@link OutputParser} records; the renderer replays only
 * when every call of the message is known, belongs to the same generated block, and has the name and
 * arguments text that were returned (a client that edited a call gets the re-encoded form).
 * Thread-safe; one instance is shared by the server's renderer and parsers.
 */
public final class ToolCallMemory {
    public static final int DEFAULT_MAX_ENTRIES = 4096;

    /** One generated block: the raw text (from the whitespace before the opening tag through the closing tag) and its calls. */
    private record Block(String rawDsml, List<ToolCall> calls) {}

    private final int maxEntries;
    private final LinkedHashMap<String, Block> byId;

    public ToolCallMemory(int maxEntries) {
        if (maxEntries < 1) throw new IllegalArgumentException("maxEntries must be >= 1");
        this.maxEntries = maxEntries;
        this.byId = new LinkedHashMap<>(64, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, Block> eldest) {
                return size() > ToolCallMemory.this.maxEntries;
            }
        };
    }

    public ToolCallMemory() {
        this(DEFAULT_MAX_ENTRIES);
    }

    /** Records a generated block; {@code calls} carry the ids handed to the client. */
    public synchronized void remember(List<ToolCall> calls, String rawDsml) {
        if (calls.isEmpty() || rawDsml == null) return;
        Block b = new Block(rawDsml, List.copyOf(calls));
        for (ToolCall c : calls) {
            if (c.id() != null) byId.put(c.id(), b);
        }
    }

    /** The exact generated text for these calls, if they are one remembered block, unchanged. */
    public synchronized Optional<String> replay(List<ToolCall> calls) {
        if (calls == null || calls.isEmpty() || calls.get(0).id() == null) return Optional.empty();
        Block b = byId.get(calls.get(0).id());
        if (b == null || b.calls.size() != calls.size()) return Optional.empty();
        for (int i = 0; i < calls.size(); i++) {
            ToolCall want = b.calls.get(i), got = calls.get(i);
            if (!want.id().equals(got.id()) || !want.name().equals(got.name())
                    || !want.argumentsJson().equals(got.argumentsJson())) {
                return Optional.empty();
            }
        }
        for (ToolCall c : calls) byId.get(c.id()); // touch: keep the whole block recent
        return Optional.of(b.rawDsml);
    }

    public synchronized int size() {
        return byId.size();
    }

    public int maxEntries() {
        return maxEntries;
    }
}
