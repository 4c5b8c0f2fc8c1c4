/* A fault injector for lbrx's fault tests, loaded with LD_PRELOAD: writes to files under $LBRX_FAULT_DIR
 * fail or are changed as $LBRX_FAULT says.
 *   eio    every pwrite of 64 KiB or more fails with EIO (so the headers are written, the data is not)
 *   flip   every pwrite of 64 KiB or more writes its data with one byte changed, and reports success
 * Other files and calls pass through unchanged. Only libc's pwrite is seen: the tests make lbrx cast, so that
 * its data goes through pwrite rather than a kernel-side copy. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int targeted(int fd) {
    const char *dir = getenv("LBRX_FAULT_DIR");
    char link[64], path[4096];
    ssize_t n;
    if (!dir) return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return 0;
    path[n] = 0;
    return strncmp(path, dir, strlen(dir)) == 0;
}

static int mode(const char *m) {
    const char *f = getenv("LBRX_FAULT");
    return f && strcmp(f, m) == 0;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset) {
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (!real) real = dlsym(RTLD_NEXT, "pwrite64");
    if (count >= 65536 && targeted(fd)) {
        if (mode("eio")) { errno = EIO; return -1; }
        if (mode("flip")) {
            char *copy = malloc(count);
            ssize_t r;
            if (!copy) { errno = ENOMEM; return -1; }
            memcpy(copy, buf, count);
            copy[count / 2] ^= 0x20;
            r = real(fd, copy, count, offset);
            free(copy);
            return r;
        }
    }
    return real(fd, buf, count, offset);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    return pwrite64(fd, buf, count, offset);
}
