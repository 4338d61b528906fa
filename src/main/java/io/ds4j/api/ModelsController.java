package io.ds4j.api;

import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Mono;
import tools.jackson.databind.node.ObjectNode;

/** GET /v1/models and /v1/models/{id}: the one served model (an empty list when none is loaded). */
@RestController
public class ModelsController {
    private final ServedModel model;

    public ModelsController(ServedModel model) {
        this.model = model;
    }

    private ObjectNode modelObject() {
        ObjectNode m = ApiSupport.object();
        m.put("id", model.id());
        m.put("object", "model");
        m.put("created", model.created());
        m.put("owned_by", "ds4j");
        m.put("context_length", model.contextSize());
        if (model.synthetic()) m.put("synthetic", true);
        return m;
    }

    @GetMapping("/v1/models")
    public Mono<Void> list(ServerHttpResponse response) {
        ObjectNode root = ApiSupport.object();
        root.put("object", "list");
        var data = root.putArray("data");
        if (model.loaded()) data.add(modelObject());
        return ApiSupport.json(response, root);
    }

    @GetMapping("/v1/models/{id}")
    public Mono<Void> get(@PathVariable("id") String id, ServerHttpResponse response) {
        return Mono.defer(() -> {
            if (!model.loaded() || !(id.equals(model.id()))) throw ApiException.modelNotFound(id);
            return ApiSupport.json(response, modelObject());
        });
    }
}
