/* A scratch directory for tests that write files, and a count of the files
 * in it. */
#ifndef NABLA_TEST_FILES_H
#define NABLA_TEST_FILES_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh, empty directory named after tag and the pid: under $TMPDIR, or
 * in memory (/dev/shm), where the savers' fsync costs nothing (on a disk it
 * can make a test that saves hundreds of times take a minute), or /tmp.
 * Returns 0, or -1 if it cannot be made. */
static inline int tf_scratch_dir(char *dir, size_t len, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, len, "%s/nabla-%s-%ld", tmp, tag, (long)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static inline void tf_remove_dir(const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

/* The number of entries of dir (. and .. aside) for which counts(name). */
static inline int tf_count_files(const char *dir, bool (*counts)(const char *))
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && counts(e->d_name))
            n++;
    if (d)
        closedir(d);
    return n;
}

#endif
