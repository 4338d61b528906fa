package io.ds4j.scheduler;

/** The bounded request queue is full (HTTP 429). */
public class QueueFullException extends RuntimeException {
    public QueueFullException(int limit) {
        super("the server is busy: " + limit + " request(s) are already waiting; retry later");
    }
}
