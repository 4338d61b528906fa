package io.ds4j.engine;

/** DS4J_ERR_COMM: a distributed collective failed (peer died, timeout). */
public class CommunicationException extends EngineException {
    public CommunicationException(String message) {
        super(COMM, message);
    }
}
