package io.ds4j.api;

import io.ds4j.engine.Ds4jNative;
import io.ds4j.engine.GenerationRequest;
import io.ds4j.engine.GenerationResult;
import io.ds4j.tokenizer.StreamDecoder;
import io.ds4j.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import org.springframework.http.server.reactive.ServerHttpResponse;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RestController;
import reactor.core.publisher.Flux;
import reactor.core.publisher.Mono;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * POST /v1/completions: raw text completion. The prompt is a string (special
 * token strings in it ARE matched, as in llama.cpp's raw completion), an
 * array with one string, an array of token ids, or an array with one array of
 * token ids. Extension: "return_tokens": true adds the generated ids to each
 * choice as "tokens".
 */
@RestController
public class CompletionsController {
    private final ApiSupport api;

    public CompletionsController(ApiSupport api) {
        this.api = api;
    }

    /** Text and tokens produced by one sampled token (text may be empty while held back). */
    record Piece(String text, int token, float logprob, int[] topIds, float[] topLps) {}

    @PostMapping("/v1/completions")
    public Mono<Void> completions(org.springframework.web.server.ServerWebExchange exchange) {
        return api.body(exchange).flatMap(body -> run(body, exchange.getResponse()));
    }

    private Mono<Void> run(String body, ServerHttpResponse response) {
        long arrival = System.nanoTime();
        Params p = Params.parse(body);
        RequestOptions o = RequestOptions.parse(p, api.props, false);
        api.model.checkModel(o.model());
        o.checkVocabulary(api.model.vocabSize());
        p.onlyDefault("echo", false, "echo is not supported");
        if (p.has("suffix")) throw ApiException.invalid("suffix", "unsupported_value", "'suffix' is not supported");
        int[] prompt = prompt(p);
        int budget = api.budget(prompt.length, o.maxTokens(), "prompt");
        Tokenizer tok = api.model.tokenizer().orElse(null);
        String id = ApiSupport.newId("cmpl-");
        response.getHeaders().set("X-Request-Id", id);
        Handler handler = new Handler(tok, api.model.eosId(), o.stop());
        var req = new GenerationRequest(prompt, o.sampling(), budget, o.logprobs() ? Math.max(o.topLogprobs(), 0) : 0, null,
                o.logprobs());
        Generations.Started gen = api.generations.start(id, arrival, req, handler);
        Flux<Generations.Event> events = gen.events();
        String modelId = api.model.id();
        long created = System.currentTimeMillis() / 1000;
        if (!o.stream()) {
            return gen.bind(events.collectList().flatMap(list -> {
                GenerationResult r = null;
                StringBuilder text = new StringBuilder();
                List<Piece> pieces = new ArrayList<>();
                for (var e : list) {
                    if (e instanceof Generations.Event.Output(Piece piece)) {
                        text.append(piece.text());
                        if (piece.token() >= 0) pieces.add(piece);
                    } else if (e instanceof Generations.Event.End end) {
                        r = end.result();
                    }
                }
                String finish = ApiSupport.finishReason(r.stop(), handler.finish);
                ObjectNode root = base(id, created, modelId);
                ObjectNode choice = root.putArray("choices").addObject();
                choice.put("index", 0);
                choice.put("text", text.toString());
                if (o.logprobs()) choice.set("logprobs", logprobs(pieces, tok, 0));
                else choice.putNull("logprobs");
                if (o.returnTokens()) tokens(choice, pieces);
                choice.put("finish_reason", finish);
                root.set("usage", ApiSupport.usage(r, -1));
                api.logRequest(id, "completions", o.user(), "ok", finish, r, arrival);
                return ApiSupport.json(response, root);
            }).doOnError(t -> api.logRequest(id, "completions", o.user(), ApiSupport.statusOf(t), null, null, arrival))
                    .doOnCancel(() -> api.logRequest(id, "completions", o.user(), "cancelled", null, null, arrival)));
        }
        int[] textOffset = {0};
        Flux<String> sse = events.concatMap(e -> switch (e) {
            case Generations.Event.KeepAlive k -> Flux.just(Sse.KEEP_ALIVE);
            case Generations.Event.PromptDone pd -> Flux.empty();
            case Generations.Event.Output(Piece piece) -> {
                if (piece.text().isEmpty() && (piece.token() < 0 || !o.logprobs() && !o.returnTokens())) yield Flux.empty();
                ObjectNode root = base(id, created, modelId);
                ObjectNode choice = root.putArray("choices").addObject();
                choice.put("index", 0);
                choice.put("text", piece.text());
                List<Piece> one = piece.token() >= 0 ? List.of(piece) : List.of();
                if (o.logprobs()) choice.set("logprobs", logprobs(one, tok, textOffset[0]));
                else choice.putNull("logprobs");
                textOffset[0] += piece.text().length();
                if (o.returnTokens()) tokens(choice, one);
                choice.putNull("finish_reason");
                yield Flux.just(Sse.data(root.toString()));
            }
            case Generations.Event.Output out -> Flux.empty();
            case Generations.Event.End end -> {
                GenerationResult r = end.result();
                String finish = ApiSupport.finishReason(r.stop(), handler.finish);
                ObjectNode root = base(id, created, modelId);
                ObjectNode choice = root.putArray("choices").addObject();
                choice.put("index", 0);
                choice.put("text", "");
                choice.putNull("logprobs");
                choice.put("finish_reason", finish);
                List<String> out = new ArrayList<>();
                out.add(Sse.data(root.toString()));
                if (o.includeUsage()) {
                    ObjectNode u = base(id, created, modelId);
                    u.putArray("choices");
                    u.set("usage", ApiSupport.usage(r, -1));
                    out.add(Sse.data(u.toString()));
                }
                out.add(Sse.DONE);
                api.logRequest(id, "completions", o.user(), "ok", finish, r, arrival);
                yield Flux.fromIterable(out);
            }
        }).onErrorResume(t -> {
            api.logRequest(id, "completions", o.user(), ApiSupport.statusOf(t), null, null, arrival);
            return Flux.just(ApiSupport.errorEvent(t));
        }).doOnCancel(() -> api.logRequest(id, "completions", o.user(), "cancelled", null, null, arrival));
        return gen.bind(ApiSupport.sse(response, sse));
    }

    private static ObjectNode base(String id, long created, String model) {
        ObjectNode root = ApiSupport.object();
        root.put("id", id);
        root.put("object", "text_completion");
        root.put("created", created);
        root.put("model", model);
        return root;
    }

    private static void tokens(ObjectNode choice, List<Piece> pieces) {
        ArrayNode a = choice.putArray("tokens");
        for (Piece p : pieces) a.add(p.token());
    }

    private static ObjectNode logprobs(List<Piece> pieces, Tokenizer tok, int offset) {
        ObjectNode lp = ApiSupport.object();
        ArrayNode tokens = lp.putArray("tokens");
        ArrayNode tlp = lp.putArray("token_logprobs");
        ArrayNode top = lp.putArray("top_logprobs");
        ArrayNode offs = lp.putArray("text_offset");
        int off = offset;
        for (Piece p : pieces) {
            tokens.add(text(tok, p.token()));
            tlp.add(p.logprob());
            ObjectNode alts = top.addObject();
            for (int i = 0; i < p.topIds().length; i++) alts.put(text(tok, p.topIds()[i]), p.topLps()[i]);
            offs.add(off);
            off += p.text().length();
        }
        return lp;
    }

    static String text(Tokenizer tok, int id) {
        if (tok != null && id >= 0 && id < tok.vocabSize()) return tok.tokenText(id);
        return "<|" + id + "|>";
    }

    private int[] prompt(Params p) {
        JsonNode n = p.get("prompt");
        if (n == null) throw ApiException.invalid("prompt", "'prompt' is required");
        if (n.isArray() && n.size() == 1 && (n.get(0).isString() || n.get(0).isArray())) n = n.get(0);
        if (n.isString()) {
            if (n.stringValue().isEmpty()) throw ApiException.invalid("prompt", "'prompt' is empty");
            return api.model.requireTokenizer("prompt").encode(n.stringValue(), true);
        }
        if (n.isArray()) {
            if (n.isEmpty()) throw ApiException.invalid("prompt", "'prompt' is empty");
            int vocab = api.model.vocabSize();
            int[] ids = new int[n.size()];
            for (int i = 0; i < ids.length; i++) {
                JsonNode e = n.get(i);
                if (e.isArray() || e.isString()) {
                    throw ApiException.invalid("prompt", "batched prompts are not supported: send one prompt per request");
                }
                if (!e.isIntegralNumber() || !e.canConvertToInt() || e.intValue() < 0 || e.intValue() >= vocab) {
                    throw ApiException.invalid("prompt", "'prompt'[" + i + "] is not a valid token id: " + e);
                }
                ids[i] = e.intValue();
            }
            return ids;
        }
        throw ApiException.invalid("prompt", "'prompt' must be a string or an array of token ids");
    }

    /** Engine-thread side: EOS, incremental UTF-8 decoding and stop strings. */
    static final class Handler implements Generations.TokenHandler {
        private final Tokenizer tok;
        private final StreamDecoder decoder;
        private final int eos;
        private final StopMatcher stops;
        volatile String finish;

        Handler(Tokenizer tok, int eos, List<String> stop) {
            this.tok = tok;
            this.decoder = tok == null ? null : tok.streamDecoder();
            this.eos = eos;
            this.stops = new StopMatcher(stop);
        }

        @Override
        public boolean onToken(Ds4jNative.Sample s, Consumer<Object> emit) {
            if (s.token() == eos) {
                finish = "stop";
                String out = stops.push(decoder == null ? "" : decoder.flush());
                if (!stops.matched()) out += stops.flush();
                if (!out.isEmpty()) emit.accept(new Piece(out, -1, 0, new int[0], new float[0]));
                return false;
            }
            String piece = decoder == null ? "" : decoder.push(s.token());
            String out = stops.push(piece);
            emit.accept(new Piece(out, s.token(), s.logprob(), s.topIds(), s.topLogprobs()));
            if (stops.matched()) {
                finish = "stop";
                return false;
            }
            return true;
        }

        @Override
        public void onEnd(GenerationResult r, Consumer<Object> emit) {
            if (finish != null) return;
            String rest = decoder == null ? "" : decoder.flush();
            String out = stops.push(rest) + stops.flush();
            if (!out.isEmpty()) emit.accept(new Piece(out, -1, 0, new int[0], new float[0]));
        }
    }
}
