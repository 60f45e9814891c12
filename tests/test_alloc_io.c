/* Every allocation made by the layers above the graph core — the IDX, CSV,
 * safetensors and checkpoint loaders, the savers, the dataset helpers and
 * the training loop — goes through the allocator hook.
 *
 * The proof compares two counts. The hook counts what reaches it; the
 * linker's --wrap (see meson.build) routes every reference to malloc,
 * calloc, realloc, posix_memalign, aligned_alloc, strdup and strndup in the
 * objects linked into this program, the static library included, to the
 * __wrap_ functions below, which count the raw calls made while the
 * library works. The hook itself calls the real allocator, so it adds
 * nothing to the raw count. Calls inside the C library (fopen's buffer,
 * opendir) are not references of ours and are not seen; zlib's are routed
 * to the hook by the IDX reader.
 *
 * Also here: nb_realloc and nb_status_set, the two public helpers this
 * rests on. */
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_util.h"

static long raw_calls, hook_calls;
/* volatile: the compiler knows malloc reads no global, and would otherwise
 * drop the store around a call to it. */
static volatile bool watching;

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t size);
int __wrap_posix_memalign(void **p, size_t align, size_t size);
void *__wrap_aligned_alloc(size_t align, size_t size);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t size)
{
    raw_calls += watching;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    raw_calls += watching;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    raw_calls += watching;
    return __real_realloc(p, size);
}

int __wrap_posix_memalign(void **p, size_t align, size_t size)
{
    raw_calls += watching;
    return __real_posix_memalign(p, align, size);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    raw_calls += watching;
    return __real_aligned_alloc(align, size);
}

char *__wrap_strdup(const char *s)
{
    raw_calls += watching;
    return __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    raw_calls += watching;
    return __real_strndup(s, n);
}

/* When fail_at > 0, the fail_at-th call of the hook fails. */
static long fail_at;

static void *hook_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    hook_calls++;
    if (fail_at > 0 && hook_calls == fail_at)
        return NULL;
    return __real_posix_memalign(&p, align, size) == 0 ? p : NULL;
}

static void hook_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, n, f) == n, "write %s", path);
    if (f)
        fclose(f);
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile f = gzopen(path, "wb");
    CHECK(f && gzwrite(f, data, (unsigned)n) == (int)n, "write %s", path);
    if (f)
        gzclose(f);
}

/* Six 2x2 ubyte images and their labels 0..2, raw and gzipped. */
static void write_inputs(void)
{
    unsigned char images[16 + 24], labels[8 + 6];
    memcpy(
        images,
        (const unsigned char[]){0, 0, 8, 3, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0, 0, 2},
        16);
    for (int i = 0; i < 24; i++)
        images[16 + i] = (unsigned char)(10 * i);
    memcpy(labels, (const unsigned char[]){0, 0, 8, 1, 0, 0, 0, 6}, 8);
    for (int i = 0; i < 6; i++)
        labels[8 + i] = (unsigned char)(i % 3);
    write_file("images.idx", images, sizeof images);
    write_file("labels.idx", labels, sizeof labels);
    write_gz("images.idx.gz", images, sizeof images);
    write_gz("labels.idx.gz", labels, sizeof labels);
    const char *csv = "a,b,label\n1,2,0\n3,4,1\n5,6,2\n7,8,1\n";
    write_file("table.csv", csv, strlen(csv));
}

/* Loads, saves and a short training run, each expected to succeed. */
static void exercise(nb_graph *g, nb_node *x, nb_node *y, nb_node *loss,
                     nb_optimizer *opt)
{
    nb_status st = {0};
    nb_tensor *t = nb_idx_read("images.idx", NB_F32, &st);
    CHECK(t != NULL, "%s", st.message);
    nb_tensor_free(t);
    t = nb_idx_read("images.idx.gz", NB_F64, &st);
    CHECK(t != NULL, "%s", st.message);
    nb_tensor_free(t);
    nb_dataset ds = {0}, gz = {0}, a = {0}, b = {0};
    CHECK(nb_dataset_load_idx(&ds, "images.idx", "labels.idx", NB_F64, 0,
                              &st) == NB_OK,
          "%s", st.message);
    CHECK(nb_dataset_load_idx(&gz, "images.idx.gz", "labels.idx.gz", NB_F64, 4,
                              &st) == NB_OK,
          "%s", st.message);
    CHECK(nb_dataset_split(&ds, 0.5, &a, &b, &st) == NB_OK, "%s", st.message);
    nb_dataset_free(&b);
    CHECK(nb_dataset_filter_classes(&b, &ds, 1, 3, &st) == NB_OK, "%s",
          st.message);
    nb_dataset_free(&b);
    CHECK(nb_dataset_slice(&b, &ds, 1, 2, &st) == NB_OK, "%s", st.message);
    nb_tensor *hot = nb_one_hot(ds.y, 3, NB_F32, &st);
    CHECK(hot != NULL, "%s", st.message);
    nb_tensor_free(hot);
    double mean[4], sd[4];
    CHECK(nb_data_column_stats(ds.x, mean, sd, &st) == NB_OK, "%s", st.message);

    nb_csv_options o = {.delimiter = ',', .header = true, .label_name = "label", .label_column = -1, .dtype = NB_F32};
    nb_tensor *labels = NULL;
    t = nb_csv_read("table.csv", &o, &labels, &st);
    CHECK(t && labels, "%s", st.message);
    nb_tensor_free(t);
    nb_tensor_free(labels);

    CHECK(nb_save_params(g, "params.safetensors", 0, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(nb_load_params(g, "params.safetensors", 0, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    nb_st_file *f = nb_st_open("params.safetensors", &st);
    CHECK(f != NULL, "%s", st.message);
    nb_st_close(f);
    CHECK(nb_checkpoint_save(g, opt, 1, "run.ckpt") == NB_OK, "%s",
          nb_graph_error(g));
    CHECK(nb_checkpoint_load(g, opt, NULL, "run.ckpt") == NB_OK, "%s",
          nb_graph_error(g));

    nb_model model = {.x = x, .y = y, .loss = loss};
    nb_metrics m;
    CHECK(nb_evaluate(g, &model, &ds, 4, &m) == NB_OK, "%s", nb_graph_error(g));
    nb_train_config c = {.epochs = 2,
                         .batch_size = 2,
                         .patience = 1,
                         .progress = NB_PROGRESS_OFF,
                         .csv_path = "log.csv"};
    CHECK(nb_train(g, &model, opt, &ds, &b, &c, NULL) == NB_OK, "%s",
          nb_graph_error(g));
    nb_dataset_free(&ds);
    nb_dataset_free(&gz);
    nb_dataset_free(&a);
    nb_dataset_free(&b);
}

/* volatile, so that the compiler cannot drop the probe's malloc. */
static void *volatile probe;

static void test_everything_through_the_hook(void)
{
    nb_graph *g = nb_graph_new();
    nb_node *x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, 4));
    nb_node *y = nb_input(g, "y", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *W = nb_param(g, "W", NB_F64, 2, SHAPE(4, 3));
    nb_node *loss = nb_softmax_ce_index_loss(
        g, nb_matmul(g, nb_scale(g, x, 1.0 / 255), W), y);
    nb_optimizer *opt =
        nb_optimizer_new(g, &(nb_optim_config){.kind = NB_OPTIM_ADAM}, 0, NULL);
    CHECK(loss && opt, "build: %s", nb_graph_error(g));
    if (!loss || !opt)
        return;

    /* The wrapper is live: a raw call made while watching is counted. */
    watching = true;
    probe = malloc(16);
    watching = false;
    free(probe);
    CHECK(raw_calls == 1, "the --wrap counter saw %ld calls of 1", raw_calls);

    raw_calls = hook_calls = 0;
    watching = true;
    exercise(g, x, y, loss, opt);
    watching = false;
    CHECK(raw_calls == 0,
          "%ld raw heap calls bypassed the hook (which saw %ld)", raw_calls,
          hook_calls);
    CHECK(hook_calls > 50, "the hook saw only %ld allocations", hook_calls);
    nb_optimizer_free(opt);
    nb_graph_free(g);
}

static void test_realloc(void)
{
    hook_calls = 0;
    char *p = nb_realloc(NULL, 0, 5);
    CHECK(p != NULL && hook_calls == 1, "NULL acts as nb_alloc");
    memcpy(p, "abcde", 5);
    char *q = nb_realloc(p, 5, 1000);
    CHECK(q && memcmp(q, "abcde", 5) == 0, "grown keeps the bytes");
    char *r = nb_realloc(q, 1000, 3);
    CHECK(r && memcmp(r, "abc", 3) == 0, "shrunk keeps the head");
    CHECK(((uintptr_t)r & 63) == 0, "64-byte aligned");
    /* A failure leaves the block as it was, still to be freed. */
    fail_at = hook_calls + 1;
    char *s = nb_realloc(r, 3, 64);
    fail_at = 0;
    CHECK(s == NULL && memcmp(r, "abc", 3) == 0, "failure keeps the block");
    nb_free(r);
}

static void test_status(void)
{
    nb_status st;
    CHECK(nb_status_set(&st, NB_ERR_IO, "%s at byte %d", "file", 7) ==
                  NB_ERR_IO &&
              st.code == NB_ERR_IO && strcmp(st.message, "file at byte 7") == 0,
          "'%s'", st.message);
    CHECK(nb_status_set(NULL, NB_ERR_NOMEM, "x") == NB_ERR_NOMEM,
          "NULL status still returns the code");
    CHECK(nb_status_set(&st, NB_OK, NULL) == NB_OK && st.code == NB_OK &&
              st.message[0] == '\0',
          "cleared");
    char longer[600];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    nb_status_set(&st, NB_ERR_ARG, "%s", longer);
    CHECK(strlen(st.message) == sizeof st.message - 1, "cut and terminated");
}

int main(void)
{
    mkdir("alloc_io_files", 0755);
    if (chdir("alloc_io_files") != 0)
        return 1;
    write_inputs();
    nb_set_allocator(&(nb_allocator){hook_alloc, hook_free, NULL});
    test_everything_through_the_hook();
    test_realloc();
    test_status();
    nb_set_allocator(NULL);
    const char *files[] = {"images.idx",    "labels.idx", "images.idx.gz",
                           "labels.idx.gz", "table.csv",  "params.safetensors",
                           "run.ckpt",      "log.csv"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        remove(files[i]);
    if (chdir("..") == 0)
        rmdir("alloc_io_files");
    return tu_finish("alloc_io");
}
