package io.ds4j.health;

import java.util.LinkedHashMap;
import java.util.Map;
import tools.jackson.core.JacksonException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/**
 * The engine health component's compute details, from ds4j_engine_describe's JSON:
 * {@code backend} ("cpu" or "cuda") and, when the describe JSON has a {@code device} object
 * (cuda), {@code gpu} with its index, name, compute capability, memory total / free at open and
 * the engine's memory plan (weights, scratch bytes). Pure, so the mapping is unit-tested.
 */
final class BackendDetails {
    private static final JsonMapper JSON = JsonMapper.builder().build();

    private BackendDetails() {}

    /**
     * @param describeJson ds4j_engine_describe's JSON ("{}" without a model)
     * @param configuredBackend ds4.engine.backend, reported when the engine does not say (no model
     *     loaded, or a native build older than the backend option, which computes on the CPU only)
     * @return {@code backend} and, with a device, {@code gpu}; fields the engine leaves out or
     *     reports with another type are left out
     */
    static Map<String, Object> of(String describeJson, String configuredBackend) {
        JsonNode root = parse(describeJson);
        Map<String, Object> details = new LinkedHashMap<>();
        JsonNode backend = root.get("backend");
        details.put("backend", backend != null && backend.isString() ? backend.stringValue() : configuredBackend);
        JsonNode device = root.get("device");
        if (device != null && device.isObject()) {
            Map<String, Object> gpu = new LinkedHashMap<>();
            putInt(gpu, "index", device.get("index"));
            putString(gpu, "name", device.get("name"));
            putString(gpu, "compute_capability", device.get("compute_capability"));
            putLong(gpu, "memory_total", device.get("memory_total"));
            putLong(gpu, "memory_free", device.get("memory_free"));
            JsonNode plan = device.get("plan");
            if (plan != null && plan.isObject()) {
                Map<String, Object> p = new LinkedHashMap<>();
                putLong(p, "weights", plan.get("weights"));
                putLong(p, "scratch", plan.get("scratch"));
                gpu.put("plan", p);
            }
            details.put("gpu", gpu);
        }
        return details;
    }

    private static JsonNode parse(String json) {
        if (json == null || json.isBlank()) return JSON.createObjectNode();
        try {
            JsonNode n = JSON.readTree(json);
            return n != null && n.isObject() ? n : JSON.createObjectNode();
        } catch (JacksonException e) {
            // /actuator/info shows an unparsable describe string as it is
            return JSON.createObjectNode();
        }
    }

    private static void putInt(Map<String, Object> m, String key, JsonNode v) {
        if (v != null && v.isIntegralNumber() && v.canConvertToInt()) m.put(key, v.intValue());
    }

    private static void putLong(Map<String, Object> m, String key, JsonNode v) {
        if (v != null && v.isIntegralNumber() && v.canConvertToLong()) m.put(key, v.longValue());
    }

    /** A string; a number too (a compute capability written as 9.0 rather than "9.0"). */
    private static void putString(Map<String, Object> m, String key, JsonNode v) {
        if (v != null && v.isString()) m.put(key, v.stringValue());
        else if (v != null && v.isNumber()) m.put(key, v.asString());
    }
}
