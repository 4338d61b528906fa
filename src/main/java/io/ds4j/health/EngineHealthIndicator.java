package io.ds4j.health;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.ClusterFault;
import io.ds4j.engine.EngineService;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.boot.health.contributor.Health;
import org.springframework.boot.health.contributor.HealthIndicator;
import org.springframework.stereotype.Component;

/**
 * The {@code engine} health component: UP with the library version when a
 * model is loaded; UP with {@code model: none} when none is configured (the
 * server then only answers health); DOWN when the configured model failed.
 * Every state names the compute {@code backend} (the engine's, else the
 * configured one) and, on a GPU, the {@code gpu} the engine opened.
 */
@Component("engine")
public class EngineHealthIndicator implements HealthIndicator {
    private final EngineService engine;
    private final Ds4jProperties props;

    public EngineHealthIndicator(EngineService engine, Ds4jProperties props) {
        this.engine = engine;
        this.props = props;
    }

    @Override
    public Health health() {
        var fault = engine.clusterFault();
        Health.Builder b = engine.loadError() != null || fault != null ? Health.down() : Health.up();
        b.withDetail("library", engine.nativeLib().version());
        b.withDetails(BackendDetails.of(engine.describeJson(), props.engine().backend().name()));
        if (engine.follower()) {
            b.withDetail("model", "loaded").withDetail("role", "follower")
                    .withDetail("rank", engine.rank()).withDetail("world_size", engine.worldSize())
                    .withDetail("follower", engine.followerState());
            if (engine.loadError() != null) b.withDetail("error", engine.loadError());
        } else if (engine.modelLoaded()) {
            b.withDetail("model", "loaded")
                    .withDetail("context_size", engine.contextSize())
                    .withDetail("context_used", engine.contextUsed())
                    .withDetail("rank", engine.rank()).withDetail("world_size", engine.worldSize());
            if (engine.worldSize() > 1) b.withDetail("cluster", cluster(fault));
        } else if (engine.loadError() != null) {
            b.withDetail("model", "failed").withDetail("error", engine.loadError());
        } else {
            b.withDetail("model", "none");
        }
        return b.build();
    }

    /** The leader's view of every rank: "leader"/"following" while the cluster works ({@code state: formed},
     *  or {@code recovered} once the group was rebuilt after a fault, with when); after a failure the
     *  state the engine's message gives each rank ("gone", "diverged", else "unknown"), the message and, while
     *  the leader keeps trying to rebuild the group, {@code recovery: retrying} with the last attempt's error.
     *  {@code recoveries} counts the successful rebuilds. */
    private Map<String, Object> cluster(ClusterFault fault) {
        Map<String, Object> c = new LinkedHashMap<>();
        Map<String, String> ranks = new LinkedHashMap<>();
        if (fault == null) {
            c.put("state", engine.recoveries() > 0 ? "recovered" : "formed");
            if (engine.lastRecovery() != null) c.put("recovered_at", engine.lastRecovery().toString());
            for (int r = 0; r < engine.worldSize(); r++) ranks.put(Integer.toString(r), r == 0 ? "leader" : "following");
        } else {
            c.put("state", "failed");
            fault.ranks().forEach((r, s) -> ranks.put(Integer.toString(r), s));
            c.put("error", fault.message());
            c.put("since", fault.at().toString());
            if (engine.recovering()) {
                c.put("recovery", "retrying");
                if (engine.recoveryError() != null) c.put("recovery_error", engine.recoveryError());
            }
        }
        c.put("recoveries", engine.recoveries());
        c.put("ranks", ranks);
        return c;
    }
}
