package io.ds4j.cluster;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A declarative description of an expert-parallel cluster (helm-like-launch/values.yaml):
 * which model, which collective backend, and the nodes in rank order. The first node is
 * the leader (rank 0): it serves HTTP and drives the followers.
 *
 * @param model GGUF path on every node that does not name its own ({@code {rank}} becomes the rank);
 *     may be null when every node sets its own
 * @param backend collective library: mpi or nccl (one GPU per rank; jaccl: not built yet)
 * @param port HTTP port of the leader
 * @param threads native worker threads per node (0 = all cores)
 * @param contextSize context length of the leader's session
 * @param repo path of the ds4j checkout on every node (scripts and builds)
 * @param expertCompact default of every node's {@code expertCompact}
 * @param engineBackend default of every node's {@code engineBackend}: where the engine computes,
 *     cpu or cuda (ds4.engine.backend; not the collective {@code backend})
 * @param allSumDtype payload of the routed-expert all_sum: f32 (default), f16 or bf16
 *     (ds4.distributed.all-sum-dtype, engine option all_sum_dtype; one value for the whole cluster)
 * @param nodes nodes in rank order; a node with {@code slots: N} is N consecutive ranks, and a host may be
 *     listed more than once (each entry its own ranks), e.g. one rank per GPU of one machine
 * @param address the address the leader's HTTP server binds (server.address); null: scripts/run's
 *     default, 127.0.0.1 (loopback only); 0.0.0.0 opens it to the network
 * @param commTimeoutMs how long a rank waits for a collective before it declares a peer dead or stalled
 *     (comm_options timeout_ms on every rank); null: the backend's default (mpi 30000, nccl 600000)
 * @param recoveryIntervalMs mpi: how long the leader waits after a lost rank before it replaces the
 *     followers (and between failed attempts; ds4.distributed.recovery.interval); 0 = no automatic recovery
 *     (ds4.distributed.recovery.enabled=false); null: the server's default (5 s)
 */
public record ClusterSpec(String model, String backend, int port, int threads, int contextSize, String repo,
        boolean expertCompact, String engineBackend, String allSumDtype, List<Node> nodes, String address,
        Integer commTimeoutMs, Integer recoveryIntervalMs) {

    /**
     * @param host host name or address as the launcher (mpirun) reaches it
     * @param experts owned routed experts "A:B" (half-open), or null for an even split
     * @param model this node's GGUF path (null: the spec's), e.g. its `ds4j-tool slice` file
     * @param expertCompact this node's file holds only its own experts (engine option
     *     expert_compact=1); null: the spec's default
     * @param engineBackend cpu or cuda for this node; null: the spec's
     * @param device this rank's CUDA device: the engine's with cuda (engine option device=, default the
     *     rank's index on its host, 0 for the first) and NCCL's with backend nccl (comm_options device=,
     *     default the node-local rank); null: defaults. Only for a node of one slot ({@code devices} otherwise)
     * @param slots how many ranks this entry starts on its host (consecutive ranks; null: 1)
     * @param devices the CUDA device of each of the entry's ranks, in rank order ({@code slots} of them;
     *     null: the defaults above)
     */
    public record Node(String host, String experts, String model, Boolean expertCompact, String engineBackend,
            Integer device, Integer slots, List<Integer> devices) {
        public Node(String host, String experts) {
            this(host, experts, null, null, null, null, null, null);
        }

        public Node {
            if (devices != null) devices = List.copyOf(devices);
        }

        /** The number of ranks this entry stands for. */
        public int slotCount() {
            return slots == null ? 1 : slots;
        }
    }

    /**
     * One process of the cluster, in rank order.
     *
     * @param node index of its entry in {@code nodes}
     * @param host the entry's host
     * @param localRank its index among the ranks on the same host (0, 1, ...), in rank order
     * @param device its CUDA device as named in the values (null: the defaults)
     */
    public record Rank(int node, String host, int localRank, Integer device) {}

    /** The 0-based rank whose number replaces {@code {rank}} in model paths. */
    public static final String RANK_PLACEHOLDER = "{rank}";

    private static final Pattern RANGE = Pattern.compile("(\\d+):(\\d+)");
    private static final Set<String> BACKENDS = Set.of("mpi", "nccl", "jaccl");
    private static final List<String> ENGINE_BACKENDS = List.of("cpu", "cuda");
    private static final List<String> ALL_SUM_DTYPES = List.of("f32", "f16", "bf16");

    public ClusterSpec {
        if (model != null && model.isBlank()) model = null;
        if (address != null && address.isBlank()) address = null;
        if (address != null && !address.matches("[A-Za-z0-9.:\\-\\[\\]]{1,255}")) {
            throw new IllegalArgumentException("values: 'address' must be a host name or IP address (got '" + address + "')");
        }
        backend = backend == null ? "mpi" : backend;
        if (!BACKENDS.contains(backend)) {
            throw new IllegalArgumentException("values: 'backend' must be one of " + BACKENDS + " (got '" + backend + "')");
        }
        engineBackend = engineBackend == null ? "cpu" : engineBackend;
        if (!ENGINE_BACKENDS.contains(engineBackend)) {
            throw new IllegalArgumentException("values: 'engineBackend' must be one of " + ENGINE_BACKENDS
                    + " (got '" + engineBackend + "')");
        }
        allSumDtype = allSumDtype == null ? "f32" : allSumDtype;
        if (!ALL_SUM_DTYPES.contains(allSumDtype)) {
            throw new IllegalArgumentException("values: 'allSumDtype' must be one of " + ALL_SUM_DTYPES
                    + " (got '" + allSumDtype + "')");
        }
        if (recoveryIntervalMs != null && recoveryIntervalMs < 0) {
            throw new IllegalArgumentException("values: 'recoveryIntervalMs' must be >= 0 (0 = no automatic recovery; got "
                    + recoveryIntervalMs + ")");
        }
        if (commTimeoutMs != null && commTimeoutMs < 0) {
            throw new IllegalArgumentException("values: 'commTimeoutMs' must be >= 0 (0 = no bound; got " + commTimeoutMs + ")");
        }
        if (port < 1 || port > 65535) throw new IllegalArgumentException("values: 'port' must be 1..65535 (got " + port + ")");
        if (threads < 0) throw new IllegalArgumentException("values: 'threads' must be >= 0");
        if (contextSize < 1) throw new IllegalArgumentException("values: 'contextSize' must be >= 1");
        if (nodes == null || nodes.isEmpty()) throw new IllegalArgumentException("values: 'nodes' must list at least one node");
        nodes = List.copyOf(nodes);
        for (Node n : nodes) {
            if (n.slots() != null && (n.slots() < 1 || n.slots() > 1024)) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'slots' must be 1..1024 (got " + n.slots() + ")");
            }
            if (n.device() != null && n.slotCount() > 1) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'device' names one GPU but the node has "
                        + n.slotCount() + " slots: list one per rank in 'devices'");
            }
            if (n.devices() != null && n.devices().size() != n.slotCount()) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'devices' lists " + n.devices().size()
                        + " GPU(s) for " + n.slotCount() + " slot(s): one per rank");
            }
            if (n.experts() != null && n.slotCount() > 1) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'experts' with " + n.slotCount()
                        + " slots is ambiguous: list the host once per rank, each with its own 'experts'");
            }
            if (n.model() != null && n.model().isBlank()) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'model' is empty");
            }
            if (n.model() == null && model == null) {
                throw new IllegalArgumentException("values: 'model' is required (GGUF path on every node), unless every node "
                        + "sets its own (node " + n.host() + " does not)");
            }
            if (n.engineBackend() != null && !ENGINE_BACKENDS.contains(n.engineBackend())) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'engineBackend' must be one of "
                        + ENGINE_BACKENDS + " (got '" + n.engineBackend() + "')");
            }
            if (n.device() != null && n.device() < 0) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'device' must be >= 0 (got " + n.device() + ")");
            }
            if (n.devices() != null && n.devices().stream().anyMatch(d -> d == null || d < 0)) {
                throw new IllegalArgumentException("values: node " + n.host() + ": 'devices' must be CUDA device indexes >= 0 (got "
                        + n.devices() + ")");
            }
            String nodeBackend = n.engineBackend() != null ? n.engineBackend() : engineBackend;
            if ((n.device() != null || n.devices() != null) && !nodeBackend.equals("cuda") && !backend.equals("nccl")) {
                // a GPU index a cpu rank without NCCL never uses: most likely a forgotten engineBackend
                throw new IllegalArgumentException("values: node " + n.host() + ": '" + (n.device() != null ? "device" : "devices")
                        + "' needs engineBackend cuda or backend nccl (this rank uses no GPU)");
            }
        }
        checkExpertRanges(nodes);
        if (backend.equals("nccl")) checkDistinctGpus(expand(nodes));
    }

    /** The ranks in order: each entry's slots, consecutively. */
    public List<Rank> ranks() {
        return expand(nodes);
    }

    /** The number of ranks (the world size). */
    public int worldSize() {
        return nodes.stream().mapToInt(Node::slotCount).sum();
    }

    private static List<Rank> expand(List<Node> nodes) {
        List<Rank> out = new ArrayList<>();
        Map<String, Integer> perHost = new java.util.HashMap<>();
        for (int i = 0; i < nodes.size(); i++) {
            Node n = nodes.get(i);
            for (int s = 0; s < n.slotCount(); s++) {
                int local = perHost.merge(n.host(), 1, Integer::sum) - 1;
                Integer dev = n.devices() != null ? n.devices().get(s) : n.device();
                out.add(new Rank(i, n.host(), local, dev));
            }
        }
        return out;
    }

    /** NCCL refuses a communicator with one GPU twice: two ranks of one host must name different devices. */
    private static void checkDistinctGpus(List<Rank> ranks) {
        Set<String> seen = new HashSet<>();
        for (Rank r : ranks) {
            if (r.device() == null) continue;
            if (!seen.add(r.host() + "\u0000" + r.device())) {
                throw new IllegalArgumentException("values: host " + r.host() + ": GPU " + r.device()
                        + " is given to two ranks; backend nccl needs one GPU per rank");
            }
        }
    }

    /** The entry rank {@code r} belongs to. */
    public Node nodeOf(int r) {
        return nodes.get(ranks().get(r).node());
    }

    /** The model path rank {@code r} opens: its node's, else the spec's, with {rank} replaced. */
    public String modelOf(int r) {
        Node n = nodeOf(r);
        String m = n.model() != null ? n.model() : model;
        return m.replace(RANK_PLACEHOLDER, Integer.toString(r));
    }

    /** Whether rank {@code r} opens its file with expert_compact=1. */
    public boolean compactOf(int r) {
        Boolean c = nodeOf(r).expertCompact();
        return c != null ? c : expertCompact;
    }

    /** The compute backend of rank {@code r}: its node's, else the spec's (cpu or cuda). */
    public String engineBackendOf(int r) {
        String b = nodeOf(r).engineBackend();
        return b != null ? b : engineBackend;
    }

    /** The CUDA device rank {@code r} names ({@code device}, or its entry of {@code devices}), or null for the defaults. */
    public Integer deviceOf(int r) {
        return ranks().get(r).device();
    }

    /** Rank {@code r}'s index among the ranks on its host (0 for the first). */
    public int localRankOf(int r) {
        return ranks().get(r).localRank();
    }

    /** How many ranks run on {@code host}. */
    public int slotsOn(String host) {
        return (int) ranks().stream().filter(x -> x.host().equals(host)).count();
    }

    /** Whether some host runs more than one rank. */
    public boolean severalRanksPerHost() {
        return ranks().stream().anyMatch(x -> x.localRank() > 0);
    }

    /** Whether the all_sum payload is 16-bit, so that the ranks need the option (f32 is the engine's default). */
    public boolean sixteenBitAllSum() {
        return !allSumDtype.equals("f32");
    }

    /** Either no node names a range (even split by the engine) or every node does, without overlap. */
    private static void checkExpertRanges(List<Node> nodes) {
        long named = nodes.stream().filter(n -> n.experts() != null).count();
        if (named == 0) return;
        if (named != nodes.size()) {
            throw new IllegalArgumentException("values: either every node sets 'experts' (A:B) or none does (even split)");
        }
        List<int[]> ranges = new ArrayList<>();
        for (Node n : nodes) {
            Matcher m = RANGE.matcher(n.experts().trim());
            if (!m.matches()) throw new IllegalArgumentException("values: node " + n.host() + ": 'experts' must be A:B (got '" + n.experts() + "')");
            int a = Integer.parseInt(m.group(1)), b = Integer.parseInt(m.group(2));
            if (a >= b) throw new IllegalArgumentException("values: node " + n.host() + ": empty expert range " + n.experts());
            for (int[] r : ranges) {
                if (a < r[1] && r[0] < b) {
                    throw new IllegalArgumentException("values: node " + n.host() + ": experts " + n.experts() + " overlap " + r[0] + ":" + r[1]);
                }
            }
            ranges.add(new int[] {a, b});
        }
    }

    /** Builds a spec from the parsed YAML tree (maps, lists, scalars). */
    @SuppressWarnings("unchecked")
    public static ClusterSpec fromMap(Map<String, Object> root) {
        if (root == null) throw new IllegalArgumentException("values: the file is empty");
        Set<String> known = Set.of("model", "backend", "port", "threads", "contextSize", "repo", "expertCompact",
                "engineBackend", "allSumDtype", "nodes", "address", "commTimeoutMs", "recoveryIntervalMs");
        for (String k : root.keySet()) {
            if (!known.contains(k)) throw new IllegalArgumentException("values: unknown key '" + k + "' (known: " + known + ")");
        }
        List<Node> nodes = new ArrayList<>();
        Object rawNodes = root.get("nodes");
        if (rawNodes != null && !(rawNodes instanceof List)) throw new IllegalArgumentException("values: 'nodes' must be a list");
        for (Object o : rawNodes == null ? List.of() : (List<Object>) rawNodes) {
            if (!(o instanceof Map)) throw new IllegalArgumentException("values: each node must be a map with 'host'");
            Map<String, Object> m = (Map<String, Object>) o;
            Object host = m.get("host");
            if (host == null || host.toString().isBlank()) throw new IllegalArgumentException("values: a node lacks 'host'");
            Set<String> nodeKeys = Set.of("host", "experts", "model", "expertCompact", "engineBackend", "device", "slots",
                    "devices");
            for (String k : m.keySet()) {
                if (!nodeKeys.contains(k)) {
                    throw new IllegalArgumentException("values: node " + host + ": unknown key '" + k + "' (known: " + nodeKeys + ")");
                }
            }
            nodes.add(new Node(host.toString(), str(m.get("experts")), str(m.get("model")),
                    m.get("expertCompact") == null ? null : bool(m.get("expertCompact"), "node " + host + ": 'expertCompact'"),
                    str(m.get("engineBackend")),
                    m.get("device") == null ? null : deviceIndex(m.get("device"), host.toString(), "device"),
                    m.get("slots") == null ? null : intOr(m.get("slots"), 1, "slots"),
                    deviceList(m.get("devices"), host.toString())));
        }
        return new ClusterSpec(str(root.get("model")), str(root.get("backend")), intOr(root.get("port"), 8080, "port"),
                intOr(root.get("threads"), 0, "threads"), intOr(root.get("contextSize"), 32768, "contextSize"),
                root.get("repo") == null ? null : root.get("repo").toString(),
                root.get("expertCompact") != null && bool(root.get("expertCompact"), "'expertCompact'"),
                str(root.get("engineBackend")), str(root.get("allSumDtype")), nodes, str(root.get("address")),
                root.get("commTimeoutMs") == null ? null : intOr(root.get("commTimeoutMs"), 0, "commTimeoutMs"),
                root.get("recoveryIntervalMs") == null ? null
                        : intOr(root.get("recoveryIntervalMs"), 0, "recoveryIntervalMs"));
    }

    private static boolean bool(Object o, String what) {
        if (o instanceof Boolean b) return b;
        String s = o.toString().trim();
        if (s.equals("true") || s.equals("false")) return Boolean.parseBoolean(s);
        throw new IllegalArgumentException("values: " + what + " must be true or false (got '" + o + "')");
    }

    /** A node's 'device': a whole number (YAML int or digits), range-checked by the constructor. */
    private static int deviceIndex(Object o, String host, String key) {
        String s = o.toString().trim();
        if ((o instanceof Integer || o instanceof Long || o instanceof String) && s.matches("-?\\d{1,9}")) {
            return Integer.parseInt(s);
        }
        throw new IllegalArgumentException("values: node " + host + ": '" + key + "' must be a CUDA device index (got '" + o + "')");
    }

    /** A node's 'devices': a YAML list of device indexes, one per slot. */
    private static List<Integer> deviceList(Object o, String host) {
        if (o == null) return null;
        if (!(o instanceof List<?> l)) {
            throw new IllegalArgumentException("values: node " + host + ": 'devices' must be a list of CUDA device indexes, "
                    + "one per slot (got '" + o + "')");
        }
        List<Integer> out = new ArrayList<>();
        for (Object d : l) {
            if (d == null) throw new IllegalArgumentException("values: node " + host + ": 'devices' has an empty entry");
            out.add(deviceIndex(d, host, "devices"));
        }
        return out;
    }

    private static String str(Object o) {
        return o == null ? null : o.toString();
    }

    private static int intOr(Object o, int dflt, String key) {
        if (o == null) return dflt;
        if (o instanceof Number n) return n.intValue();
        try {
            return Integer.parseInt(o.toString().trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("values: '" + key + "' must be an integer (got '" + o + "')");
        }
    }
}
