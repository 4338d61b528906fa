package io.ds4j.health;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.EngineService;
import io.ds4j.engine.GgufMetadata;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.boot.actuate.info.Info;
import org.springframework.boot.actuate.info.InfoContributor;
import org.springframework.stereotype.Component;
import tools.jackson.databind.json.JsonMapper;

/** /actuator/info: engine library, model (from ds4j_engine_describe), quantisation, context, distributed backend. */
@Component
public class ModelInfoContributor implements InfoContributor {
    private static final JsonMapper JSON = JsonMapper.builder().build();
    private final EngineService engine;
    private final Ds4jProperties props;

    public ModelInfoContributor(EngineService engine, Ds4jProperties props) {
        this.engine = engine;
        this.props = props;
    }

    /** llama.cpp's general.file_type numbering for the common types. */
    static String fileType(long t) {
        return switch ((int) t) {
            case 0 -> "F32";
            case 1 -> "F16";
            case 7 -> "Q8_0";
            case 2 -> "Q4_0";
            case 15 -> "Q4_K_M";
            case 14 -> "Q4_K_S";
            case 10 -> "Q2_K";
            case 18 -> "Q6_K";
            case 19 -> "IQ2_XXS";
            case 20 -> "IQ2_XS";
            case 30 -> "IQ4_XS";
            case 32 -> "BF16";
            default -> "type " + t;
        };
    }

    @Override
    public void contribute(Info.Builder builder) {
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("library", engine.nativeLib().version());
        e.put("api_version", engine.nativeLib().apiVersion());
        builder.withDetail("engine", e);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", props.model().effectiveId());
        m.put("path", props.model().path());
        m.put("loaded", engine.modelLoaded());
        if (engine.modelLoaded()) {
            GgufMetadata meta = engine.metadata();
            m.put("name", meta.string("general.name").orElse(""));
            m.put("architecture", meta.string("general.architecture").orElse(""));
            meta.integer("general.file_type").ifPresent(t -> m.put("quantization", fileType(t)));
            m.put("context_size", engine.contextSize());
            m.put("vocab_size", engine.nVocab());
            try {
                m.put("describe", JSON.readValue(engine.describeJson(), Map.class));
            } catch (RuntimeException ex) {
                m.put("describe", engine.describeJson());
            }
        } else if (engine.loadError() != null) {
            m.put("error", engine.loadError());
        }
        builder.withDetail("model", m);
        var d = props.distributed();
        Map<String, Object> dist = new LinkedHashMap<>();
        dist.put("enabled", d.enabled());
        Map<?, ?> describe = Map.of();
        try {
            describe = JSON.readValue(engine.describeJson(), Map.class);
        } catch (RuntimeException ex) {
            // an unparsable describe string is shown under model.describe already
        }
        // as the engine reports them (describe JSON); "none" / 0 / 1 without comm= or without a model
        dist.put("comm", describe.get("comm") instanceof String c ? c : "none");
        dist.put("rank", describe.get("rank") instanceof Number r ? r.intValue() : engine.rank());
        dist.put("world_size", describe.get("world_size") instanceof Number w ? w.intValue() : engine.worldSize());
        dist.put("role", engine.follower() ? "follower" : "leader");
        if (describe.get("expert_range") != null) dist.put("expert_range", describe.get("expert_range"));
        // the experts the model file holds (ds4j-tool slice); absent for a full file
        if (describe.get("expert_slice") != null) dist.put("expert_slice", describe.get("expert_slice"));
        // the payload and overlap in effect (the leader's, adopted at open)
        if (describe.get("all_sum_dtype") instanceof String t) dist.put("all_sum_dtype_in_effect", t);
        if (describe.get("allsum_overlap") instanceof Boolean o) dist.put("allsum_overlap", o);
        if (d.enabled()) {
            dist.put("backend", d.backend().name());
            dist.put("configured_rank", d.rank());
            dist.put("configured_world_size", d.worldSize());
            dist.put("all_sum_dtype", d.allSumDtype().name());
            dist.put("expert_compact", d.expertCompact());
        }
        builder.withDetail("distributed", dist);
    }
}
