package io.ds4j.scheduler;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The default max-concurrent from the session memory budget. */
class SchedulerConfigurationTest {
    static final long MIB = 1L << 20;

    @Test
    void defaultMaxConcurrentIsTheBudgetOverOneSessionCappedAt64() {
        assertThat(SchedulerConfiguration.defaultMaxConcurrent(11_000 * MIB, 2 * MIB)).isEqualTo(64);
        assertThat(SchedulerConfiguration.defaultMaxConcurrent(1000 * MIB, 100 * MIB)).isEqualTo(10);
        assertThat(SchedulerConfiguration.defaultMaxConcurrent(50 * MIB, 100 * MIB)).as("at least one").isEqualTo(1);
        assertThat(SchedulerConfiguration.defaultMaxConcurrent(-1, 100 * MIB)).as("memory unknown").isEqualTo(1);
        assertThat(SchedulerConfiguration.defaultMaxConcurrent(1000 * MIB, 0)).as("no model").isEqualTo(1);
    }
}
