package io.ds4j.engine;

import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The first collective failure a cluster's leader met: the engine's message and what it says about each
 * rank. The native backends name a rank when they know it ("rank 1 (pid 4242 on this host) is gone", the
 * divergence guard's "rank 1 0x..."); a timeout cannot tell which peer is missing.
 *
 * @param message the engine's DS4J_ERR_COMM message
 * @param ranks each rank's state: "leader" (rank 0, this process, alive), "gone", "stopped", "diverged", or
 *     "unknown"
 * @param at when the leader saw it
 */
public record ClusterFault(String message, Map<Integer, String> ranks, Instant at) {
    private static final Pattern GONE = Pattern.compile("rank (\\d+) \\(pid \\d+[^)]*\\) is gone");
    private static final Pattern STOPPED = Pattern.compile("rank (\\d+) \\(pid \\d+[^)]*\\) is stopped");
    private static final Pattern DIVERGED = Pattern.compile("rank (\\d+) 0x[0-9a-f]+");

    public ClusterFault {
        ranks = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(ranks));
    }

    /** Reads the per-rank states out of the engine's message. */
    public static ClusterFault of(String message, int worldSize, Instant at) {
        Map<Integer, String> ranks = new LinkedHashMap<>();
        ranks.put(0, "leader");
        for (int r = 1; r < worldSize; r++) ranks.put(r, "unknown");
        String m = message == null ? "" : message;
        mark(ranks, GONE.matcher(m), "gone");
        mark(ranks, STOPPED.matcher(m), "stopped");
        mark(ranks, DIVERGED.matcher(m), "diverged");
        return new ClusterFault(m, ranks, at);
    }

    private static void mark(Map<Integer, String> ranks, Matcher m, String state) {
        while (m.find()) {
            int r = Integer.parseInt(m.group(1));
            if (r > 0 && ranks.containsKey(r)) ranks.put(r, state);
        }
    }
}
