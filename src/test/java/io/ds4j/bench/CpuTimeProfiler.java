package io.ds4j.bench;

import com.sun.management.OperatingSystemMXBean;
import java.lang.management.ManagementFactory;
import java.util.Collection;
import java.util.List;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.profile.InternalProfiler;
import org.openjdk.jmh.results.AggregationPolicy;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.ScalarResult;

/**
 * JMH profiler ({@code -prof io.ds4j.bench.CpuTimeProfiler}) giving each iteration's work per
 * second of CPU time of the benchmark JVM, next to JMH's per second of wall time. On a shared,
 * loaded machine the wall-clock score mostly measures how much of a core the benchmark thread got;
 * the CPU-time score is closer to what one dedicated core does. Process CPU includes GC and JIT
 * threads, so it is a slight underestimate of the benchmark thread's own rate.
 *
 * <p>For throughput benchmarks it reports {@code cpu.rate} in operations per CPU microsecond (with
 * one operation per byte, that is MB per CPU second); for the others {@code cpu.time} in CPU
 * milliseconds per operation.
 */
public final class CpuTimeProfiler implements InternalProfiler {
    private final OperatingSystemMXBean os = (OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    private long startCpu;

    @Override
    public String getDescription() {
        return "work per second of process CPU time";
    }

    @Override
    public void beforeIteration(BenchmarkParams bp, IterationParams ip) {
        startCpu = os.getProcessCpuTime();
    }

    @Override
    public Collection<? extends Result> afterIteration(BenchmarkParams bp, IterationParams ip, IterationResult ir) {
        long cpuNs = os.getProcessCpuTime() - startCpu;
        long ops = ir.getMetadata().getAllOps();
        if (cpuNs <= 0 || ops <= 0) return List.of();
        if (bp.getMode() == Mode.Throughput) {
            return List.of(new ScalarResult("cpu.rate", ops / (cpuNs / 1e3), "ops/cpu-us", AggregationPolicy.AVG));
        }
        return List.of(new ScalarResult("cpu.time", cpuNs / 1e6 / ops, "cpu-ms/op", AggregationPolicy.AVG));
    }
}
