/* An LD_PRELOAD shim for the fault tests: while the file named by IPSEITY_FAULT_FILE
 * exists, every positioned write and every fsync/fdatasync fails with EIO, as a failing
 * disk's would. Built by the test with the system C compiler; never part of a build. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static int failing(void) {
    const char *path = getenv("IPSEITY_FAULT_FILE");
    return path != NULL && access(path, F_OK) == 0;
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
