package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.ds4j.engine.CancelledException;
import io.ds4j.engine.ContextOverflowException;
import io.ds4j.engine.EngineException;
import io.ds4j.scheduler.QueueFullException;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.springframework.http.HttpStatus;
import tools.jackson.databind.JsonNode;

/** Pure units: SSE framing, error mapping, stop-string matching, engine error typing. */
class SseAndErrorsTest {
    @Test
    void sseFramesAreOpenAiStyle() {
        assertThat(Sse.data("{\"a\":1}")).isEqualTo("data: {\"a\":1}\n\n");
        assertThat(Sse.DONE).isEqualTo("data: [DONE]\n\n");
        assertThat(Sse.KEEP_ALIVE).isEqualTo(": keep-alive\n\n");
        assertThat(Sse.comment("a\nb")).isEqualTo(": a b\n\n");
        assertThatThrownBy(() -> Sse.data("{\n}")).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void streamErrorEventCarriesTheOpenAiErrorObject() {
        String ev = ApiSupport.errorEvent(new ContextOverflowException("too long"));
        assertThat(ev).startsWith("data: ").endsWith("\n\n");
        JsonNode e = Params.JSON.readTree(ev.substring(6)).get("error");
        assertThat(e.get("message").stringValue()).isEqualTo("too long");
        assertThat(e.get("type").stringValue()).isEqualTo("invalid_request_error");
        assertThat(e.get("code").stringValue()).isEqualTo("context_length_exceeded");
        assertThat(e.has("param")).isTrue();
    }

    @Test
    void failuresMapToStatusAndCode() {
        assertThat(OpenAiErrors.toApi(new QueueFullException(3)).status()).isEqualTo(HttpStatus.TOO_MANY_REQUESTS);
        assertThat(OpenAiErrors.toApi(new ContextOverflowException("x")).status()).isEqualTo(HttpStatus.BAD_REQUEST);
        assertThat(OpenAiErrors.toApi(new EngineException(EngineException.STATE, "x")).status()).isEqualTo(HttpStatus.SERVICE_UNAVAILABLE);
        assertThat(OpenAiErrors.toApi(new EngineException(EngineException.IO, "disk")).status()).isEqualTo(HttpStatus.INTERNAL_SERVER_ERROR);
        assertThat(OpenAiErrors.toApi(new EngineException(EngineException.IO, "disk")).code()).isEqualTo("engine_io");
        assertThat(OpenAiErrors.toApi(new IllegalStateException("boom")).type()).isEqualTo("server_error");
        assertThat(OpenAiErrors.toApi(ApiException.modelNotFound("m")).status()).isEqualTo(HttpStatus.NOT_FOUND);
    }

    @Test
    void nativeCodesBecomeTypedExceptions() {
        assertThat(EngineException.of(-5, "full")).isInstanceOf(ContextOverflowException.class).hasMessage("full");
        assertThat(EngineException.of(-6, "stop")).isInstanceOf(CancelledException.class);
        assertThat(EngineException.of(-2, "io").code()).isEqualTo(-2);
        assertThat(EngineException.codeName(-7)).isEqualTo("communication");
    }

    @Test
    void stopMatcherHoldsBackPossibleStartsAndCutsAtTheMatch() {
        StopMatcher m = new StopMatcher(List.of("END", "xy"));
        assertThat(m.push("hello E")).isEqualTo("hello ");
        assertThat(m.push("N")).isEmpty();
        assertThat(m.push("Dless")).isEmpty();
        assertThat(m.matched()).isTrue();
        assertThat(m.flush()).isEmpty();

        StopMatcher n = new StopMatcher(List.of("END"));
        assertThat(n.push("aE")).isEqualTo("a");
        assertThat(n.push("x")).isEqualTo("Ex");
        assertThat(n.push("EN")).isEmpty();
        assertThat(n.flush()).isEqualTo("EN");
        assertThat(n.matched()).isFalse();

        StopMatcher earliest = new StopMatcher(List.of("bc", "ab"));
        assertThat(earliest.push("xabc")).isEqualTo("x");
        assertThat(new StopMatcher(List.of()).push("anything")).isEqualTo("anything");
    }
}
