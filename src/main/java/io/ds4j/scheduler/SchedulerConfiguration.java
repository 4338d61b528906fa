package io.ds4j.scheduler;

import io.ds4j.config.Ds4jProperties;
import io.ds4j.engine.EngineService;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/** The one scheduler, queueing onto the engine owner thread. */
@Configuration(proxyBeanMethods = false)
public class SchedulerConfiguration {
    @Bean
    RequestScheduler requestScheduler(EngineService engine, Ds4jProperties props) {
        return new RequestScheduler(engine.executor(), props.server().queueLimit());
    }
}
