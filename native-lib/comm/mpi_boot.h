/*
 * mpi_boot.h — MPI start-up shared by the plugins that run over MPI or
 * bootstrap through it (comm_mpi.c, comm_nccl.c; each plugin is its own
 * shared object, so this is a header of static functions). MPI is
 * initialised on first use if the host program has not done so
 * (MPI_THREAD_SERIALIZED: the engine's owner thread may not be the thread
 * that opened it) and finalised at process exit, not at close, because MPI
 * cannot be initialised twice in one process and engines may be reopened.
 */
#ifndef DS4J_MPI_BOOT_H
#define DS4J_MPI_BOOT_H

#include <stdio.h>
#include <stdlib.h>

#include <mpi.h>

static int mpi_boot_registered;
/* Set after a collective failed because a peer is dead or stalled:
 * MPI_Finalize synchronises with every peer (Open MPI: a PMIx fence) and
 * would wait forever for a stopped one, so the process exits without it
 * (plain mpirun then ends the job; with --enable-recovery it only notes it). */
static int mpi_boot_peer_lost;

static void mpi_boot_finalize(void) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin && !mpi_boot_peer_lost) MPI_Finalize();
}

/* Make sure MPI is up. Returns 0, or 1 with a message starting with `who`
 * in err. */
static int mpi_boot(const char *who, char *err, size_t err_cap) {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin) {
        snprintf(err, err_cap, "%s: MPI was already finalised in this process", who);
        return 1;
    }
    if (init) return 0;
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) {
        snprintf(err, err_cap, "%s: MPI_Init_thread failed (error %d)", who, rc);
        return 1;
    }
    if (provided < MPI_THREAD_SERIALIZED) {
        /* single-threaded MPI still works if the caller keeps to one thread */
        fprintf(stderr, "ds4j %s: MPI provides thread level %d < SERIALIZED; call the engine from the thread that "
                        "opened it\n", who, provided);
    }
    if (!mpi_boot_registered) atexit(mpi_boot_finalize);
    mpi_boot_registered = 1;
    return 0;
}

#endif /* DS4J_MPI_BOOT_H */
