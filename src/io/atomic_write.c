/* Replacing a file atomically, and durably where the file system allows.
 *
 * The new content is written to "<path>.tmp.<pid>" in the target's own
 * directory (rename is atomic only within one file system), then flushed,
 * fsync'ed, closed and renamed over path, and finally the directory is
 * fsync'ed so that the rename itself is on disk. What that guarantees:
 * - a crash or kill at any moment leaves path holding either the old file
 *   or the complete new one, never a mix or a truncated file;
 * - on power loss, on a POSIX file system that honours fsync (ext4, xfs,
 *   btrfs in their default modes), once the save has returned NB_OK the
 *   new file survives; before that, path holds the old or the new file.
 *   A file system that lies about fsync (some network and FUSE mounts, a
 *   disk with a volatile write cache and barriers off) voids the second
 *   promise, not the first.
 * A process killed between creating its temporary file and the rename
 * leaves that file behind. The next save to the same path removes every
 * "<path>.tmp.<pid>" whose process no longer exists (kill(pid, 0) answers
 * ESRCH), and leaves alone those of live processes, which may be saving
 * right now. A pid reused by an unrelated process keeps its file until that
 * process ends; a directory shared between machines over the network must
 * not be saved to from several of them, since a pid says nothing about
 * another host's processes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "io_internal.h"

#define TMP_INFIX ".tmp."

/* The directory part of path ("." for a bare name), from nb_alloc. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = nb_alloc(len + 1);
    if (dir) {
        memcpy(dir, slash ? path : ".", len);
        dir[len] = '\0';
    }
    return dir;
}

/* The pid of a temporary file name of base, or 0 if name is not one. */
static pid_t temp_pid(const char *name, const char *base, size_t blen)
{
    size_t ilen = strlen(TMP_INFIX);
    if (strncmp(name, base, blen) != 0 ||
        strncmp(name + blen, TMP_INFIX, ilen) != 0)
        return 0;
    const char *d = name + blen + ilen;
    long long pid = 0;
    if (!*d)
        return 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || pid > 1000000000LL)
            return 0;
        pid = pid * 10 + (*d - '0');
    }
    return (pid_t)pid;
}

/* Best effort: a directory that cannot be listed or a file that cannot be
 * removed costs disk space, not correctness, so it does not fail a save. */
static void remove_stale(const char *dir, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t blen = strlen(base), dlen = strlen(dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid = temp_pid(e->d_name, base, blen);
        if (pid <= 0 || pid == getpid())
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue; /* alive (EPERM: alive, another user's) */
        size_t nlen = strlen(e->d_name);
        char *full = nb_alloc(dlen + nlen + 2);
        if (!full)
            continue;
        memcpy(full, dir, dlen);
        full[dlen] = '/';
        memcpy(full + dlen + 1, e->d_name, nlen + 1);
        (void)unlink(full);
        nb_free(full);
    }
    closedir(d);
}

static void release(atomic_file *a)
{
    nb_free(a->tmp);
    nb_free(a->dir);
    a->tmp = a->dir = NULL;
    a->fp = NULL;
}

int atomic_open(atomic_file *a, const char *path, nb_status *status)
{
    a->path = path;
    a->fp = NULL;
    a->dir = dir_of(path);
    size_t tlen = strlen(path) + 32;
    a->tmp = nb_alloc(tlen);
    if (!a->dir || !a->tmp) {
        release(a);
        return nb_status_set(status, NB_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(a->tmp, tlen, "%s" TMP_INFIX "%ld", path, (long)getpid());
    remove_stale(a->dir, path);
    a->fp = fopen(a->tmp, "wb");
    if (!a->fp) {
        int rc = nb_status_set(status, NB_ERR_IO,
                               "%s: cannot create the temporary file '%s': %s",
                               path, a->tmp, strerror(errno));
        release(a);
        return rc;
    }
    return NB_OK;
}

/* Makes the rename durable. A file system that cannot sync a directory
 * says so with EINVAL (or the directory cannot be opened for reading):
 * nothing more can be done there, and the save stands. */
static int sync_dir(const atomic_file *a, nb_status *status)
{
    int fd = open(a->dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return errno == EACCES ? NB_OK
                               : nb_status_set(status, NB_ERR_IO,
                                               "%s: saved, but its directory "
                                               "cannot be opened to sync "
                                               "the rename: %s",
                                               a->path, strerror(errno));
    int rc = NB_OK;
    if (fsync(fd) != 0 && errno != EINVAL && errno != ENOTSUP)
        rc = nb_status_set(status, NB_ERR_IO,
                           "%s: saved, but syncing its directory failed (%s): "
                           "the new file may not survive a power loss",
                           a->path, strerror(errno));
    close(fd);
    return rc;
}

int atomic_commit(atomic_file *a, bool written, int errno_write,
                  nb_status *status)
{
    const char *stage = "write";
    int saved = errno_write;
    bool ok = written;
    if (ok && fflush(a->fp) != 0)
        ok = false, saved = errno;
    if (ok && fsync(fileno(a->fp)) != 0)
        ok = false, stage = "fsync", saved = errno;
    if (fclose(a->fp) != 0 && ok)
        ok = false, stage = "close", saved = errno;
    if (ok && rename(a->tmp, a->path) != 0)
        ok = false, stage = "rename", saved = errno;
    int rc;
    if (!ok) {
        remove(a->tmp);
        rc = nb_status_set(status, NB_ERR_IO,
                           "%s: saving failed at %s of '%s': %s; the previous "
                           "file, if any, is unchanged",
                           a->path, stage, a->tmp, strerror(saved));
    } else {
        rc = sync_dir(a, status);
    }
    release(a);
    return rc;
}
