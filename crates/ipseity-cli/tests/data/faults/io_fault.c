/* An LD_PRELOAD shim for the fault tests: while the file named by IPSEITY_FAULT_FILE
 * exists, positioned writes and fsync/fdatasync fail with EIO, as a failing disk's would.
 * With IPSEITY_FAULT_PER_MILLE=N only about N in 1,000 of them fail, at random moments
 * (a disk that comes and goes), from a seed in IPSEITY_FAULT_SEED. Built by the test with
 * the system C compiler; never part of a build. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static int failing(void) {
    const char *path = getenv("IPSEITY_FAULT_FILE");
    if (path == NULL || access(path, F_OK) != 0) return 0;
    const char *rate = getenv("IPSEITY_FAULT_PER_MILLE");
    if (rate == NULL) return 1;
    /* One generator per thread, so the draws need no lock. */
    static __thread uint64_t state;
    if (state == 0) {
        const char *seed = getenv("IPSEITY_FAULT_SEED");
        state = (seed ? strtoull(seed, NULL, 10) : 1) * 0x9E3779B97F4A7C15ull
                ^ (uint64_t)(uintptr_t)&state;
        if (state == 0) state = 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (long)(state % 1000) < atol(rate);
}

#define PASS(name, ret, params, args)                              \
    ret name params {                                              \
        static ret (*real) params;                                 \
        if (failing()) { errno = EIO; return -1; }                 \
        if (!real) real = (ret (*) params)dlsym(RTLD_NEXT, #name); \
        return real args;                                          \
    }

PASS(pwrite, ssize_t, (int fd, const void *b, size_t n, off_t o), (fd, b, n, o))
PASS(pwrite64, ssize_t, (int fd, const void *b, size_t n, off_t o), (fd, b, n, o))
PASS(fsync, int, (int fd), (fd))
PASS(fdatasync, int, (int fd), (fd))
