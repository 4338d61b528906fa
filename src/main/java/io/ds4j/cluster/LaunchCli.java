package io.ds4j.cluster;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.Map;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * helm-like-launch: {@code ds4j-launch render VALUES [--out DIR]} writes the hostfile and
 * prints the mpirun command; {@code ds4j-launch up VALUES} also runs it and records mpirun's
 * pid in {@code DIR/mpirun.pid}; Ctrl-C or SIGTERM of {@code up}, or {@code ds4j-launch down
 * VALUES [--out DIR]} from another shell, stops the whole cluster: mpirun is asked to stop
 * (it forwards SIGTERM to every rank), and whatever of it is still there after a grace
 * period is killed.
 */
public final class LaunchCli {
    private LaunchCli() {}

    public static void main(String[] args) throws Exception {
        System.exit(run(args));
    }

    /** How long mpirun gets to stop its ranks (the leader closes its engine) before everything is killed. */
    static final Duration GRACE = Duration.ofSeconds(20);

    static int run(String[] args) throws IOException, InterruptedException {
        if (args.length < 2 || !(args[0].equals("render") || args[0].equals("up") || args[0].equals("down"))) {
            System.err.println("usage: ds4j-launch render|up|down VALUES.yaml [--out DIR]");
            return 2;
        }
        Path values = Path.of(args[1]);
        Path out = args.length >= 4 && args[2].equals("--out") ? Path.of(args[3]) : Path.of("build", "launch");
        if (args[0].equals("down")) return down(out.resolve(PID_FILE));
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
        return up(argv, out.resolve(PID_FILE));
    }

    static final String PID_FILE = "mpirun.pid";

    /** Runs mpirun until it ends; a JVM shutdown (SIGINT, SIGTERM) stops it and its ranks first. */
    private static int up(List<String> argv, Path pidFile) throws IOException, InterruptedException {
        Path live = pidFile.resolveSibling(PID_FILE + ".tmp");
        Process p = new ProcessBuilder(argv).inheritIO().start();
        Files.writeString(live, Long.toString(p.pid()) + "\n");
        Files.move(live, pidFile, java.nio.file.StandardCopyOption.REPLACE_EXISTING, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        Thread hook = new Thread(() -> {
            stop(p.toHandle(), "ds4j-launch: stopping the cluster (mpirun pid " + p.pid() + ")");
            deletePid(pidFile, p.pid());
        }, "ds4j-launch-stop");
        Runtime.getRuntime().addShutdownHook(hook);
        Thread watch = new Thread(() -> watchLeader(p.toHandle()), "ds4j-launch-watch");
        watch.setDaemon(true);
        watch.start();
        int rc = p.waitFor();
        deletePid(pidFile, p.pid());
        return rc;
    }

    /**
     * mpirun runs with --enable-recovery, so a rank's death no longer ends the job: good for a follower (the
     * leader stays up and reports it), but followers left without their leader would wait forever. So when
     * the leader's process (found among mpirun's local descendants by its --ds4.distributed.rank=0
     * argument) is gone, the whole job is stopped. A leader on another host than {@code up} is not seen here.
     */
    private static void watchLeader(ProcessHandle mpirun) {
        ProcessHandle leader = null;
        while (mpirun.isAlive()) {
            if (leader == null) {
                leader = mpirun.descendants().filter(h -> h.info().arguments()
                        .map(a -> java.util.Arrays.asList(a).contains("--ds4.distributed.rank=0")).orElse(false))
                        .findFirst().orElse(null);
            } else if (!leader.isAlive()) {
                stop(mpirun, "ds4j-launch: the leader (rank 0, pid " + leader.pid() + ") exited: stopping the cluster");
                return;
            }
            sleepQuietly(1000);
        }
    }

    /** ds4j-launch down: stops the mpirun that {@code up} recorded. 0 when it is gone (or was), 1 otherwise. */
    private static int down(Path pidFile) {
        long pid;
        try {
            pid = Long.parseLong(Files.readString(pidFile).trim());
        } catch (IOException | NumberFormatException e) {
            System.err.println("ds4j-launch: no running cluster recorded in " + pidFile + " (start one with `up`)");
            return 1;
        }
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        // the pid may have been reused since: only an mpirun (Open MPI's orterun) is ours to stop
        if (h.isEmpty() || !h.get().isAlive() || !isMpirun(h.get())) {
            System.err.println("ds4j-launch: mpirun " + pid + " is not running any more");
            deletePid(pidFile, pid);
            return 0;
        }
        boolean gone = stop(h.get(), "ds4j-launch: stopping the cluster (mpirun pid " + pid + ")");
        deletePid(pidFile, pid);
        return gone ? 0 : 1;
    }

    private static boolean isMpirun(ProcessHandle h) {
        String cmd = h.info().command().orElse("");
        String name = cmd.substring(cmd.lastIndexOf('/') + 1);
        return name.equals("mpirun") || name.equals("mpiexec") || name.equals("orterun") || name.equals("prterun");
    }

    /** SIGTERM to mpirun (it forwards it to every rank), then SIGKILL to whatever of it and its processes
     *  is left after {@link #GRACE}. Returns whether everything is gone. */
    static boolean stop(ProcessHandle mpirun, String message) {
        if (!mpirun.isAlive()) return true;
        System.err.println(message);
        List<ProcessHandle> tree = new java.util.ArrayList<>(mpirun.descendants().toList());
        mpirun.destroy();
        try {
            mpirun.onExit().get(GRACE.toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception timeoutOrInterrupt) {
            System.err.println("ds4j-launch: mpirun did not stop within " + GRACE.toSeconds() + " s: killing it and its ranks");
            mpirun.destroyForcibly();
        }
        tree.addAll(mpirun.descendants().toList());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        for (ProcessHandle c : tree) {
            // ranks mpirun left behind (it normally reaps them first)
            while (c.isAlive() && System.nanoTime() < deadline) sleepQuietly(100);
            if (c.isAlive()) c.destroyForcibly();
        }
        return !mpirun.isAlive() && tree.stream().noneMatch(ProcessHandle::isAlive);
    }

    private static void sleepQuietly(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void deletePid(Path pidFile, long pid) {
        try {
            if (Files.isRegularFile(pidFile) && Files.readString(pidFile).trim().equals(Long.toString(pid))) Files.delete(pidFile);
        } catch (IOException ignored) {
            // best effort: a stale file is recognised by `down` (the pid is not an mpirun)
        }
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
