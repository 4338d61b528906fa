package io.ds4j.engine;

import java.lang.foreign.MemorySegment;

/**
 * One row group of a batched step: {@code tokens} to evaluate after the
 * current position of {@code session} (one token = a decode step, more = a
 * prefill chunk). The sessions of one step are distinct.
 */
public record BatchEntry(MemorySegment session, int[] tokens) {
    public BatchEntry {
        if (tokens.length == 0) throw new IllegalArgumentException("a batch entry needs at least one token");
    }
}
