package io.ds4j.api;

import io.ds4j.chat.ChatMessage;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.springframework.stereotype.Component;
import tools.jackson.databind.node.ObjectNode;

/**
 * Stored responses of /v1/responses ({@code store: true}, the default): the response object as returned,
 * and the conversation it ended (previous turns, this request's input and its output, without the
 * instructions, which OpenAI does not carry over), so that a request naming it in
 * {@code previous_response_id} continues that conversation. Bounded LRU of
 * {@code ds4.responses.store-size} entries, in memory only (lost on restart). Thread-safe.
 */
@Component
public class ResponseStore {
    /** One stored response. */
    record Entry(ObjectNode response, List<ChatMessage> conversation) {}

    private final int capacity;
    private final LinkedHashMap<String, Entry> entries;

    public ResponseStore(ResponsesProperties props) {
        this.capacity = props.storeSize();
        this.entries = new LinkedHashMap<>(64, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, ResponseStore.Entry> eldest) {
                return size() > capacity;
            }
        };
    }

    synchronized void put(String id, ObjectNode response, List<ChatMessage> conversation) {
        if (capacity == 0) return;
        entries.put(id, new Entry(response.deepCopy(), List.copyOf(conversation)));
    }

    synchronized Optional<Entry> get(String id) {
        Entry e = entries.get(id);
        return e == null ? Optional.empty() : Optional.of(new Entry(e.response().deepCopy(), e.conversation()));
    }

    synchronized boolean remove(String id) {
        return entries.remove(id) != null;
    }

    synchronized int size() {
        return entries.size();
    }
}
