package io.ds4j.health;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.EngineService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.availability.AvailabilityChangeEvent;
import org.springframework.boot.availability.ReadinessState;
import org.springframework.context.ApplicationContext;
import org.springframework.context.event.ContextClosedEvent;
import org.springframework.context.event.EventListener;
import org.springframework.stereotype.Component;

/**
 * Readiness (/actuator/health/readiness) = a model is loaded and, when
 * distributed, the cluster is formed (the engine reports the configured rank
 * and world size) and this process is the leader (rank 0; followers never
 * take HTTP traffic) and the cluster has not failed since (a rank died, stalled
 * or diverged: readiness turns DOWN the moment the leader sees it, and UP again once the leader has rebuilt
 * the group, ds4.distributed.recovery). Liveness stays UP: a server without a
 * model still answers (503 on the API). On shutdown readiness flips first so
 * load balancers stop sending traffic while in-flight streams finish.
 */
@Component
public class ReadinessPublisher {
    private static final Logger log = LoggerFactory.getLogger(ReadinessPublisher.class);
    private final EngineService engine;
    private final Ds4jProperties props;
    private final ApplicationContext context;

    public ReadinessPublisher(EngineService engine, Ds4jProperties props, ApplicationContext context) {
        this.engine = engine;
        this.props = props;
        this.context = context;
        // a rank lost while serving: stop taking traffic at once (the leader itself stays up, answering 503)
        engine.onClusterFault(() -> {
            log.warn("not ready for traffic: {}", notReadyReason());
            AvailabilityChangeEvent.publish(context, ReadinessState.REFUSING_TRAFFIC);
        });
        // the leader rebuilt the group (ds4.distributed.recovery): take traffic again
        engine.onClusterRecovered(() -> {
            String reason = notReadyReason();
            if (reason != null) {
                log.warn("cluster recovered but still not ready: {}", reason);
                return;
            }
            log.info("ready for traffic again: the cluster recovered ({} recoveries)", engine.recoveries());
            AvailabilityChangeEvent.publish(context, ReadinessState.ACCEPTING_TRAFFIC);
        });
    }

    /** Why the server is not ready, or null when it is. */
    public String notReadyReason() {
        if (engine.follower()) {
            return "this node is a follower (rank " + engine.rank() + "): only rank 0 serves HTTP"
                    + (engine.loadError() != null ? "; " + engine.loadError() : "");
        }
        if (!engine.modelLoaded()) {
            return engine.loadError() != null ? "model failed to load: " + engine.loadError() : "no model configured";
        }
        if (engine.clusterFault() != null) {
            return "cluster failed: " + engine.clusterFault().message() + " (ranks: " + engine.clusterFault().ranks() + ")";
        }
        if (props.distributed().enabled() && !engine.clusterFormed()) {
            return "cluster not formed: the engine reports world size " + engine.worldSize() + ", configured "
                    + props.distributed().worldSize();
        }
        return null;
    }

    /** Spring Boot declares readiness after startup; without a model (or cluster) that is overruled. */
    @EventListener
    public void onAvailability(AvailabilityChangeEvent<?> event) {
        if (event.getState() != ReadinessState.ACCEPTING_TRAFFIC) return;
        String reason = notReadyReason();
        if (reason != null) {
            log.warn("not ready for traffic: {}", reason);
            AvailabilityChangeEvent.publish(context, ReadinessState.REFUSING_TRAFFIC);
        }
    }

    @EventListener(ContextClosedEvent.class)
    public void onClose() {
        AvailabilityChangeEvent.publish(context, ReadinessState.REFUSING_TRAFFIC);
    }
}
