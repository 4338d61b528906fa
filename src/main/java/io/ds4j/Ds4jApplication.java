package io.ds4j;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.properties.ConfigurationPropertiesScan;

/** Entry point of the ds4j server. */
@SpringBootApplication
@ConfigurationPropertiesScan
public class Ds4jApplication {
    public static void main(String[] args) {
        SpringApplication.run(Ds4jApplication.class, args);
    }
}
