package io.ds4j.api;

import io.ds4j.tokenizer.Tokenizer;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Mono;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * llama.cpp-style tokenizer endpoints.
 * POST /tokenize {"content": "...", "add_special": false, "with_pieces": false} → {"tokens": [...]}
 * (with_pieces: [{"id": n, "piece": "..."}]); "parse_special" (default true, as llama.cpp) matches
 * special-token strings in the content.
 * POST /detokenize {"tokens": [...]} → {"content": "..."}.
 */
@RestController
public class TokenizeController {
    private final ServedModel model;
    private final org.springframework.util.unit.DataSize maxRequestSize;

    public TokenizeController(ServedModel model, io.ds4j.config.Ds4jProperties props) {
        this.model = model;
        this.maxRequestSize = props.server().maxRequestSize();
    }

    @PostMapping("/tokenize")
    public Mono<Void> tokenize(org.springframework.web.server.ServerWebExchange exchange) {
        ServerHttpResponse response = exchange.getResponse();
        return ApiSupport.body(exchange, maxRequestSize).flatMap(body -> {
            Params p = Params.parse(body);
            Tokenizer tok = model.requireTokenizer("content");
            String content = p.string("content");
            if (content == null) throw ApiException.invalid("content", "'content' is required");
            boolean addSpecial = p.bool("add_special", false);
            boolean parseSpecial = p.bool("parse_special", true);
            boolean withPieces = p.bool("with_pieces", false);
            int[] ids = tok.encode(content, parseSpecial);
            if (addSpecial && tok.bosId() >= 0) {
                int[] withBos = new int[ids.length + 1];
                withBos[0] = tok.bosId();
                System.arraycopy(ids, 0, withBos, 1, ids.length);
                ids = withBos;
            }
            ObjectNode root = ApiSupport.object();
            ArrayNode tokens = root.putArray("tokens");
            for (int id : ids) {
                if (withPieces) tokens.addObject().put("id", id).put("piece", tok.tokenText(id));
                else tokens.add(id);
            }
            return ApiSupport.json(response, root);
        });
    }

    @PostMapping("/detokenize")
    public Mono<Void> detokenize(org.springframework.web.server.ServerWebExchange exchange) {
        ServerHttpResponse response = exchange.getResponse();
        return ApiSupport.body(exchange, maxRequestSize).flatMap(body -> {
            Params p = Params.parse(body);
            Tokenizer tok = model.requireTokenizer("tokens");
            JsonNode n = p.get("tokens");
            if (n == null || !n.isArray()) throw ApiException.invalid("tokens", "'tokens' must be an array of token ids");
            int[] ids = new int[n.size()];
            for (int i = 0; i < ids.length; i++) {
                JsonNode e = n.get(i);
                if (!e.isIntegralNumber() || !e.canConvertToInt() || e.intValue() < 0 || e.intValue() >= tok.vocabSize()) {
                    throw ApiException.invalid("tokens", "'tokens'[" + i + "] is not a valid token id: " + e);
                }
                ids[i] = e.intValue();
            }
            ObjectNode root = ApiSupport.object();
            root.put("content", tok.decode(ids));
            return ApiSupport.json(response, root);
        });
    }
}
