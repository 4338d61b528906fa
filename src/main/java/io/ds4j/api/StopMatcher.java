package io.ds4j.api;

import java.util.List;

/**
 * Finds stop strings in streamed text: text that might be the start of a stop
 * string is held back until it is decided; on a match the text before it is
 * released and the rest dropped.
 */
final class StopMatcher {
    private final List<String> stops;
    private final StringBuilder pending = new StringBuilder();
    private boolean matched;

    StopMatcher(List<String> stops) {
        this.stops = stops;
    }

    boolean matched() {
        return matched;
    }

    /** Adds text; returns what can be released now. */
    String push(String text) {
        if (matched) return "";
        if (stops.isEmpty()) return text;
        pending.append(text);
        int best = -1;
        for (String s : stops) {
            int i = pending.indexOf(s);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        if (best >= 0) {
            matched = true;
            String out = pending.substring(0, best);
            pending.setLength(0);
            return out;
        }
        int hold = 0;
        String pend = pending.toString();
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, pending.length()); k > hold; k--) {
                if (pend.regionMatches(pend.length() - k, s, 0, k)) {
                    hold = k;
                    break;
                }
            }
        }
        String out = pending.substring(0, pending.length() - hold);
        pending.delete(0, pending.length() - hold);
        return out;
    }

    /** Releases held-back text at the end of generation. */
    String flush() {
        if (matched) return "";
        String out = pending.toString();
        pending.setLength(0);
        return out;
    }
}
