package io.ds4j.api;

import jakarta.validation.constraints.Max;
import jakarta.validation.constraints.Min;
import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.bind.DefaultValue;
import org.springframework.validation.annotation.Validated;

/**
 * The OpenAI Responses endpoint ({@code ds4.responses.*}, see docs/configuration.md).
 *
 * @param storeSize how many responses (with their conversations) the in-memory store keeps for
 *     {@code previous_response_id} and GET /v1/responses/{id}; the least recently used goes first; 0 keeps none
 */
@Validated
@ConfigurationProperties("ds4.responses")
public record ResponsesProperties(@Min(0) @Max(1_000_000) @DefaultValue("1000") int storeSize) {}
