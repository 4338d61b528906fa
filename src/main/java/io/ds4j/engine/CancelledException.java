package io.ds4j.engine;

/** DS4J_ERR_CANCELLED: the progress callback (client gone, shutdown) stopped an evaluation. */
public class CancelledException extends EngineException {
    public CancelledException(String message) {
        super(CANCELLED, message);
    }
}
