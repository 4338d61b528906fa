package io.ds4j.engine;

import static org.assertj.core.api.Assertions.assertThat;

import java.time.Instant;
import org.junit.jupiter.api.Test;

class ClusterFaultTest {
    @Test
    void aDeadPeerNamedByTheMpiBackendIsGoneAndTheOthersUnknown() {
        ClusterFault f = ClusterFault.of("expert all-reduce failed at layer 0: mpi all_sum failed on rank 0 of 3: "
                + "MPI_Allreduce: rank 2 (pid 4242 on this host) is gone; waited 100 ms", 3, Instant.EPOCH);
        assertThat(f.ranks()).containsExactly(java.util.Map.entry(0, "leader"), java.util.Map.entry(1, "unknown"),
                java.util.Map.entry(2, "gone"));
    }

    @Test
    void divergedRanksAreNamedAndATimeoutNamesNone() {
        ClusterFault d = ClusterFault.of("mpi divergence guard: after forward 6 the ranks evaluated different tokens: "
                + "leader (rank 0) token hash 0x483b2ab24bc97bb2, rank 1 0x799e1c9952f84355; ...", 2, Instant.EPOCH);
        assertThat(d.ranks()).containsEntry(1, "diverged").containsEntry(0, "leader");
        ClusterFault t = ClusterFault.of("mpi all_sum failed on rank 0 of 2: MPI_Allreduce did not complete within "
                + "3000 ms (timeout_ms): a peer is dead or stalled", 2, Instant.EPOCH);
        assertThat(t.ranks()).containsEntry(1, "unknown");
        assertThat(ClusterFault.of("MPI_Allreduce did not complete within 3000 ms (timeout_ms): rank 1 (pid 77 on this "
                + "host) is stopped", 2, Instant.EPOCH).ranks()).containsEntry(1, "stopped");
        // a rank number outside the cluster is not invented
        assertThat(ClusterFault.of("rank 7 (pid 1 on this host) is gone", 2, Instant.EPOCH).ranks()).hasSize(2);
    }
}
