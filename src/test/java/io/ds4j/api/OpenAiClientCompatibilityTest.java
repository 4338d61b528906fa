package io.ds4j.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The official OpenAI Java SDK (com.openai:openai-java) against the running server. */
class OpenAiClientCompatibilityTest extends DemoModelServerTest {
    OpenAIClient client;

    @BeforeEach
    void client() {
        client = OpenAIOkHttpClient.builder().baseUrl("http://localhost:" + port + "/v1").apiKey("unused")
                .maxRetries(0).build();
    }

    ChatCompletionCreateParams.Builder hello() {
        return ChatCompletionCreateParams.builder().model("demo").addSystemMessage("Be brief.").addUserMessage("Hi there")
                .maxCompletionTokens(6).temperature(0.0)
                .putAdditionalBodyProperty("thinking", JsonValue.from(false));
    }

    @Test
    void chatCompletionNonStreaming() {
        ChatCompletion c = client.chat().completions().create(hello().build());
        assertThat(c.id()).startsWith("chatcmpl-");
        assertThat(c.model()).isEqualTo("demo");
        assertThat(c.choices()).hasSize(1);
        var choice = c.choices().getFirst();
        assertThat(choice.finishReason().asString()).isIn("length", "stop");
        assertThat(choice.message().content()).isPresent();
        var usage = c.usage().orElseThrow();
        assertThat(usage.completionTokens()).isBetween(1L, 6L);
        assertThat(usage.promptTokens()).isPositive();
        assertThat(usage.promptTokensDetails().orElseThrow().cachedTokens()).isPresent();
    }

    @Test
    void chatCompletionStreamingMatchesNonStreaming() {
        String whole = client.chat().completions().create(hello().build()).choices().getFirst().message().content().orElse("");
        StringBuilder text = new StringBuilder();
        List<String> finish = new ArrayList<>();
        long[] usageTokens = {-1};
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(
                hello().streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            s.stream().forEach(chunk -> {
                chunk.usage().ifPresent(u -> usageTokens[0] = u.completionTokens());
                for (var ch : chunk.choices()) {
                    ch.delta().content().ifPresent(text::append);
                    ch.finishReason().ifPresent(f -> finish.add(f.asString()));
                }
            });
        }
        assertThat(text.toString()).isEqualTo(whole);
        assertThat(finish).hasSize(1);
        assertThat(usageTokens[0]).isBetween(1L, 6L);
    }

    @Test
    void legacyCompletionsAndModels() {
        Completion c = client.completions().create(CompletionCreateParams.builder().model("demo").prompt("Once upon a time")
                .maxTokens(4).temperature(0.0).build());
        assertThat(c.choices()).hasSize(1);
        assertThat(c.choices().getFirst().finishReason().asString()).isIn("length", "stop");
        assertThat(c.usage().orElseThrow().completionTokens()).isBetween(1L, 4L);
        assertThat(client.models().list().data()).anySatisfy(m -> assertThat(m.id()).isEqualTo("demo"));
        assertThat(client.models().retrieve("demo").id()).isEqualTo("demo");
    }

    @Test
    void errorsMapToTheSdksExceptions() {
        assertThatThrownBy(() -> client.chat().completions().create(hello().model("no-such-model").build()))
                .isInstanceOf(NotFoundException.class).hasMessageContaining("no-such-model");
        assertThatThrownBy(() -> client.chat().completions().create(hello().n(2).build()))
                .isInstanceOf(BadRequestException.class).hasMessageContaining("n");
    }

    /** A structured-output target: the SDK derives the JSON schema from it and parses the answer into it. */
    public static class Verdict {
        public String answer;
        public long score;
        public List<Boolean> flags;
    }

    @Test
    void structuredOutputsThroughTheSdkParseIntoTheClass() {
        var tok = io.ds4j.tokenizer.TestTokenizers.real();
        // steer the random model towards closing strings and arrays so the document ends within the budget
        var bias = JsonValue.from(java.util.Map.of(String.valueOf(tok.encodeOne("\"")), 10, String.valueOf(tok.encodeOne("]")), 6,
                String.valueOf(tok.encodeOne("}")), 6));
        var params = ChatCompletionCreateParams.builder().model("demo").addUserMessage("Judge this.")
                .maxCompletionTokens(1500).temperature(1.0).seed(3L)
                .putAdditionalBodyProperty("thinking", JsonValue.from(false))
                .putAdditionalBodyProperty("logit_bias", bias)
                .responseFormat(Verdict.class).build();
        var completion = client.chat().completions().create(params);
        var choice = completion.choices().getFirst();
        assertThat(choice.finishReason().asString()).isEqualTo("stop");
        Verdict v = choice.message().content().orElseThrow();
        assertThat(v.answer).isNotNull();
        assertThat(v.flags).isNotNull();
    }
}
