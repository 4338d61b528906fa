package io.ds4j.cluster;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * helm-like-launch: {@code ds4j-launch render VALUES [--out DIR]} writes the hostfile and
 * prints the mpirun command; {@code ds4j-launch up VALUES} also runs it (Ctrl-C stops the
 * whole cluster, as mpirun forwards the signal to every rank).
 */
public final class LaunchCli {
    private LaunchCli() {}

    public static void main(String[] args) throws Exception {
        System.exit(run(args));
    }

    static int run(String[] args) throws IOException, InterruptedException {
        if (args.length < 2 || !(args[0].equals("render") || args[0].equals("up"))) {
            System.err.println("usage: ds4j-launch render|up VALUES.yaml [--out DIR]");
            return 2;
        }
        Path values = Path.of(args[1]);
        Path out = args.length >= 4 && args[2].equals("--out") ? Path.of(args[3]) : Path.of("build", "launch");
        ClusterSpec spec;
        try {
            spec = load(values);
        } catch (IllegalArgumentException e) {
            System.err.println("ds4j-launch: " + values + ": " + e.getMessage());
            return 1;
        }
        LaunchPlan plan;
        try {
            plan = new LaunchPlan(spec);
        } catch (IllegalArgumentException e) {
            System.err.println("ds4j-launch: " + e.getMessage());
            return 1;
        }
        Files.createDirectories(out);
        Path hostfile = out.resolve("hostfile");
        Files.writeString(hostfile, plan.hostfile());
        List<String> argv = plan.mpirunArgv(hostfile.toAbsolutePath().toString());
        Files.writeString(out.resolve("mpirun.sh"), "#!/usr/bin/env bash\nexec " + LaunchPlan.shellLine(argv) + "\n");
        out.resolve("mpirun.sh").toFile().setExecutable(true);
        System.out.println(LaunchPlan.shellLine(argv));
        if (args[0].equals("render")) return 0;
        Process p = new ProcessBuilder(argv).inheritIO().start();
        return p.waitFor();
    }

    /** Parses the values file with SnakeYAML's safe constructor (plain maps, lists, scalars). */
    @SuppressWarnings("unchecked")
    public static ClusterSpec load(Path values) throws IOException {
        if (!Files.isRegularFile(values)) throw new IllegalArgumentException("no such file");
        try (InputStream in = Files.newInputStream(values)) {
            Object root = new Yaml(new SafeConstructor(new LoaderOptions())).load(in);
            if (root != null && !(root instanceof Map)) throw new IllegalArgumentException("the top level must be a map");
            return ClusterSpec.fromMap((Map<String, Object>) root);
        } catch (org.yaml.snakeyaml.error.YAMLException e) {
            throw new IllegalArgumentException("not valid YAML: " + e.getMessage().lines().findFirst().orElse(""));
        }
    }
}
