/* Saving and loading parameters and checkpoints (safetensors).
 *
 * - Round trips of f32 and f64 parameters, bit for bit (memcmp), including
 *   NaN payloads, -0, infinities and subnormals; matching is by name.
 * - The file layout checked byte by byte against the format (header size,
 *   padding to 8, creation order), and the nb_st_* reader.
 * - Interoperability both ways with tests/safetensors_check.py, which uses
 *   only json, struct and numpy; both sides compute the expected values
 *   from a formula whose values are exact in f32/f64, so equality is exact.
 * - About thirty hand-crafted hostile files, each with its own message, and
 *   a fuzz loop of seeded random corruptions that must never crash.
 * - Atomic saving: a missing directory, a rename that fails and a write cut
 *   short by RLIMIT_FSIZE leave the old file intact and no temporary file.
 * - Checkpoint resume: Adam + dropout + shuffled batches trained N steps
 *   straight equals k steps, checkpoint, rebuild, load, N - k more steps,
 *   bit for bit; mismatched graphs/optimisers are refused unchanged, and so
 *   is every differing hyper-parameter, named with both values.
 * - F64 values beyond the f32 range refused when loaded into f32; stale
 *   temporary files of dead processes removed by the next save; running
 *   out of memory anywhere in a load or a save is NB_ERR_NOMEM with the
 *   old file intact.
 */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#define DIR_ "io_files"

static char *path_of(char *buf, const char *name)
{
    snprintf(buf, 256, DIR_ "/%s", name);
    return buf;
}

/* Every value is a multiple of 2^-10 below 1 in magnitude (exact in f32),
 * plus for f64 a multiple of 2^-40 (41 significant bits: exact in f64). */
static double base_value(int k, int64_t i)
{
    return (double)((i * 7919 + (int64_t)k * 104729) % 2001 - 1000) / 1024.0;
}

static double formula(int k, int64_t i, nb_dtype dt)
{
    double v = base_value(k, i);
    return dt == NB_F64 ? v + (double)(i % 97) * 0x1p-40 : v;
}

static void fill(nb_tensor *t, int k)
{
    for (int64_t i = 0; i < nb_tensor_size(t); i++)
        nb_tensor_set(t, i, formula(k, i, nb_tensor_dtype(t)));
}

static size_t tensor_bytes(const nb_tensor *t)
{
    return (size_t)nb_tensor_size(t) * nb_dtype_size(nb_tensor_dtype(t));
}

static bool same_bits(const nb_tensor *a, const nb_tensor *b)
{
    return nb_tensor_dtype(a) == nb_tensor_dtype(b) &&
           nb_tensor_size(a) == nb_tensor_size(b) &&
           memcmp(nb_tensor_cdata(a), nb_tensor_cdata(b), tensor_bytes(a)) == 0;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void write_all(const char *path, const void *data, size_t len)
{
    /* A fresh file rather than a truncated one: ext4 flushes a file that
     * was truncated and rewritten when it is closed, at milliseconds each. */
    remove(path);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    if (len)
        fwrite(data, 1, len, f);
    fclose(f);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int count_temp_files(void)
{
    DIR *d = opendir(DIR_);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            clean_dir(p);
            rmdir(p);
        } else {
            remove(p);
        }
    }
    closedir(d);
}

/* ---- round trips ---- */

static void set_bits32(nb_tensor *t, int64_t i, uint32_t bits)
{
    memcpy(nb_tensor_f32(t) + i, &bits, 4);
}

static void set_bits64(nb_tensor *t, int64_t i, uint64_t bits)
{
    memcpy(nb_tensor_f64(t) + i, &bits, 8);
}

static nb_graph *make_params(nb_node **p, bool reversed)
{
    nb_graph *g = nb_graph_new();
    static const char *names[] = {"A", "B", "C", "D", "E.frozen"};
    static const nb_dtype dts[] = {NB_F32, NB_F64, NB_F64, NB_F32, NB_F64};
    static const int ranks[] = {2, 1, 0, 3, 1};
    static const int64_t shapes[][3] = {{3, 4}, {6}, {0}, {2, 1, 3}, {2}};
    for (int j = 0; j < 5; j++) {
        int i = reversed ? 4 - j : j;
        p[i] = nb_param(g, names[i], dts[i], ranks[i], shapes[i]);
    }
    nb_param_set_trainable(g, p[4], false);
    /* Nodes that are not parameters are not saved by default. */
    nb_constant(g, "K", NB_F64, 1, SHAPE(2));
    nb_input(g, "x", NB_F32, 2, SHAPE(NB_DYNAMIC, 4));
    return g;
}

static void test_roundtrip(void)
{
    char path[256], path2[256];
    path_of(path, "params.safetensors");
    path_of(path2, "subset.safetensors");
    nb_node *p[5], *q[5];
    nb_graph *g = make_params(p, false);
    for (int i = 0; i < 5; i++)
        fill(nb_node_value(p[i]), i);
    nb_tensor *a = nb_node_value(p[0]), *b = nb_node_value(p[1]);
    set_bits32(a, 1, 0x7fc12345u); /* NaN with a payload */
    set_bits32(a, 2, 0x80000000u); /* -0 */
    set_bits32(a, 3, 0x7f800000u); /* +inf */
    set_bits32(a, 4, 0x00000001u); /* smallest subnormal */
    set_bits64(b, 0, UINT64_C(0x7ff8dead0000beef));
    set_bits64(b, 1, UINT64_C(0x8000000000000000));
    set_bits64(b, 2, UINT64_C(0xfff0000000000000));
    set_bits64(b, 3, UINT64_C(0x0000000000000003));
    CHECK(nb_save_params(g, path, 0, NULL) == NB_OK, "%s", nb_graph_error(g));

    /* The layout, read by hand. */
    size_t len;
    unsigned char *raw = read_all(path, &len);
    CHECK(raw && len >= 8, "file written");
    if (raw && len >= 8) {
        uint64_t n = le64(raw);
        CHECK((8 + n) % 8 == 0, "header padded to 8: n = %llu",
              (unsigned long long)n);
        size_t data = 12 * 4 + 6 * 8 + 8 + 6 * 4 + 2 * 8;
        CHECK(len == 8 + n + data, "file size %zu, header %llu, data %zu", len,
              (unsigned long long)n, data);
        char *h = malloc(n + 1);
        memcpy(h, raw + 8, n);
        h[n] = '\0';
        CHECK(h[0] == '{', "header starts with '{'");
        size_t end = n;
        while (end > 0 && h[end - 1] == ' ')
            end--;
        CHECK(end > 0 && h[end - 1] == '}' && n - end < 8,
              "padded with < 8 spaces");
        const char *pa = strstr(h, "\"A\""), *pb = strstr(h, "\"B\""),
                   *pc = strstr(h, "\"C\""), *pd = strstr(h, "\"D\""),
                   *pe = strstr(h, "\"E.frozen\"");
        CHECK(pa && pb && pc && pd && pe && pa < pb && pb < pc && pc < pd &&
                  pd < pe,
              "creation order: %s", h);
        CHECK(!strstr(h, "\"K\"") && !strstr(h, "\"x\""), "only parameters: %s",
              h);
        CHECK(strstr(h, "\"A\":{\"dtype\":\"F32\",\"shape\":[3,4],"
                        "\"data_offsets\":[0,48]}") != NULL,
              "entry of A: %s", h);
        CHECK(strstr(h, "\"C\":{\"dtype\":\"F64\",\"shape\":[],"
                        "\"data_offsets\":[96,104]}") != NULL,
              "scalar entry: %s", h);
        /* A's element 5 as little-endian bytes at data offset 20. */
        float a5 = (float)formula(0, 5, NB_F32);
        uint32_t bits;
        memcpy(&bits, &a5, 4);
        const unsigned char *e = raw + 8 + n + 20;
        CHECK(e[0] == (bits & 0xff) && e[3] == bits >> 24, "little-endian");
        free(h);
    }
    free(raw);

    /* Load into a graph that made the same parameters in another order. */
    nb_graph *g2 = make_params(q, true);
    CHECK(nb_load_params(g2, path, 0, NULL) == NB_OK, "%s", nb_graph_error(g2));
    for (int i = 0; i < 5; i++)
        CHECK(same_bits(nb_node_value(p[i]), nb_node_value(q[i])),
              "param %d bit for bit", i);

    /* A subset in a chosen order; loading a subset ignores extra tensors. */
    CHECK(nb_save_params(g, path2, 2, (nb_node *[]){p[1], p[0]}) == NB_OK, "%s",
          nb_graph_error(g));
    nb_status st = {0};
    nb_st_file *f = nb_st_open(path2, &st);
    CHECK(f && nb_st_count(f) == 2, "%s", st.message);
    CHECK(f && strcmp(nb_st_name(f, 0), "B") == 0 &&
              strcmp(nb_st_name(f, 1), "A") == 0,
          "order given");
    nb_st_close(f);
    nb_tensor_fill(nb_node_value(q[0]), 0);
    nb_tensor_fill(nb_node_value(q[3]), 7);
    CHECK(nb_load_params(g2, path, 1, &q[0]) == NB_OK, "%s",
          nb_graph_error(g2));
    CHECK(same_bits(nb_node_value(p[0]), nb_node_value(q[0])), "subset load");
    CHECK(nb_tensor_get(nb_node_value(q[3]), 0) == 7, "others untouched");
    nb_graph_free(g);
    nb_graph_free(g2);
}

/* ---- the nb_st_* reader and writer ---- */

static void test_st_api(void)
{
    char path[256];
    nb_status st = {0};
    path_of(path, "params.safetensors"); /* from test_roundtrip */
    nb_st_file *f = nb_st_open(path, &st);
    CHECK(f != NULL, "%s", st.message);
    if (!f)
        return;
    CHECK(nb_st_count(f) == 5, "count %d", nb_st_count(f));
    CHECK(strcmp(nb_st_name(f, 3), "D") == 0, "name 3");
    CHECK(nb_st_find(f, "E.frozen") == 4 && nb_st_find(f, "A") == 0 &&
              nb_st_find(f, "nope") == -1,
          "find");
    CHECK(strcmp(nb_st_dtype(f, 0), "F32") == 0 &&
              strcmp(nb_st_dtype(f, 1), "F64") == 0,
          "dtypes");
    CHECK(nb_st_rank(f, 3) == 3 && nb_st_shape(f, 3)[0] == 2 &&
              nb_st_shape(f, 3)[1] == 1 && nb_st_shape(f, 3)[2] == 3,
          "shape of D");
    CHECK(nb_st_rank(f, 2) == 0, "scalar rank");
    CHECK(nb_st_name(f, 5) == NULL && nb_st_rank(f, -1) == -1, "out of range");
    CHECK(nb_st_metadata(f, "format") == NULL && nb_st_metadata_count(f) == 0,
          "no metadata");
    /* D is F32 (k = 3): into f64 the values are exact. */
    nb_tensor *t = nb_tensor_new(NB_F64, 1, SHAPE(6));
    CHECK(nb_st_read(f, 3, t, &st) == NB_OK, "%s", st.message);
    for (int i = 0; i < 6; i++)
        CHECK(nb_tensor_get(t, i) == formula(3, i, NB_F32), "D[%d]", i);
    /* E (F64, k = 4) into f32 rounds. */
    nb_tensor *t2 = nb_tensor_new(NB_F32, 1, SHAPE(2));
    CHECK(nb_st_read(f, 4, t2, &st) == NB_OK, "%s", st.message);
    for (int i = 0; i < 2; i++)
        CHECK(nb_tensor_f32(t2)[i] == (float)formula(4, i, NB_F64), "E[%d]", i);
    CHECK(nb_st_read(f, 0, t2, &st) == NB_ERR_ARG &&
              strstr(st.message, "has 12 elements, the destination 2") &&
              strstr(st.message, path),
          "%s", st.message);
    CHECK(nb_st_read(f, 9, t2, &st) == NB_ERR_ARG &&
              strstr(st.message, "out of range"),
          "%s", st.message);
    nb_tensor_free(t);
    nb_tensor_free(t2);
    nb_st_close(f);

    /* nb_st_save: metadata, an empty tensor, escaped names. */
    path_of(path, "st_save.safetensors");
    nb_tensor *x = nb_tensor_new(NB_F32, 2, SHAPE(0, 3));
    nb_tensor *y = nb_tensor_new(NB_F64, 1, SHAPE(2));
    fill(y, 9);
    const char *names[] = {"empty", "tab\there \"q\" \\ \xc3\xa9"};
    const nb_tensor *ts[] = {x, y};
    const char *keys[] = {"k1", "k2"}, *vals[] = {"v1", "line\nbreak"};
    CHECK(nb_st_save(path, 2, names, ts, 2, keys, vals, &st) == NB_OK, "%s",
          st.message);
    f = nb_st_open(path, &st);
    CHECK(f != NULL, "%s", st.message);
    if (f) {
        CHECK(nb_st_find(f, names[1]) == 1, "escaped name round trip");
        CHECK(nb_st_rank(f, 0) == 2 && nb_st_shape(f, 0)[0] == 0, "empty");
        CHECK(strcmp(nb_st_metadata(f, "k2"), "line\nbreak") == 0, "metadata");
        CHECK(nb_st_metadata_count(f) == 2 &&
                  strcmp(nb_st_metadata_key(f, 0), "k1") == 0 &&
                  nb_st_metadata_key(f, 2) == NULL,
              "metadata keys");
        nb_tensor *z = nb_tensor_new(NB_F64, 1, SHAPE(2));
        CHECK(nb_st_read(f, 1, z, &st) == NB_OK && same_bits(y, z), "%s",
              st.message);
        nb_tensor_free(z);
        nb_st_close(f);
    }
    /* Refused names. */
    const char *dup[] = {"a", "a"};
    CHECK(nb_st_save(path, 2, dup, ts, 0, NULL, NULL, &st) < 0 &&
              strstr(st.message, "duplicate name 'a'"),
          "%s", st.message);
    const char *meta[] = {"__metadata__"};
    CHECK(nb_st_save(path, 1, meta, ts, 0, NULL, NULL, &st) < 0 &&
              strstr(st.message, "__metadata__"),
          "%s", st.message);
    const char *bad[] = {"bad\xff"};
    CHECK(nb_st_save(path, 1, bad, ts, 0, NULL, NULL, &st) < 0 &&
              strstr(st.message, "UTF-8"),
          "%s", st.message);
    /* The earlier good file survived all three. */
    f = nb_st_open(path, &st);
    CHECK(f && nb_st_count(f) == 2, "%s", st.message);
    nb_st_close(f);
    nb_tensor_free(x);
    nb_tensor_free(y);

    /* Duplicate node names in a parameter save. */
    nb_graph *g = nb_graph_new();
    nb_param(g, "w", NB_F32, 1, SHAPE(2));
    nb_param(g, "w", NB_F32, 1, SHAPE(3));
    CHECK(nb_save_params(g, path, 0, NULL) < 0, "duplicate node names");
    CHECK_ERROR(g, "save_params", path, "duplicate name 'w'");
    nb_graph_free(g);
}

/* ---- Python interoperability ---- */

/* The first Python that has numpy: the one on PATH may be a private
 * install without it while the system's has python3-numpy. */
static const char *find_python(char *script, size_t len)
{
    const char *src = getenv("NABLA_SOURCE_DIR");
    if (!src) {
        printf(
            "note: NABLA_SOURCE_DIR unset; skipping the Python cross-check\n");
        return NULL;
    }
    snprintf(script, len, "%s/tests/safetensors_check.py", src);
    static const char *const candidates[] = {"python3", "/usr/bin/python3"};
    char cmd[128];
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        snprintf(cmd, sizeof cmd, "%s -c 'import numpy' >/dev/null 2>&1",
                 candidates[i]);
        if (system(cmd) == 0)
            return candidates[i];
    }
    printf("note: no python3 with numpy found; skipping the Python "
           "cross-check\n");
    return NULL;
}

static void test_python(void)
{
    char script[512], cmd[1200], path[256];
    nb_status st = {0};
    const char *python = find_python(script, sizeof script);
    if (!python)
        return;

    /* C writes, Python checks (the spec is C_SPEC in the script). */
    path_of(path, "from_c.safetensors");
    struct {
        const char *name;
        nb_dtype dt;
        int rank;
        int64_t shape[3];
    } spec[] = {
        {"layer1.W", NB_F32, 2, {3, 5}},
        {"layer1.b", NB_F32, 1, {5}},
        {"scalar", NB_F64, 0, {0}},
        {"deep", NB_F64, 3, {2, 3, 4}},
        {"empty", NB_F32, 2, {0, 3}},
        {"na\xc3\xafve \"quoted\"\\name\n\t/", NB_F64, 1, {7}},
    };
    enum { NS = sizeof spec / sizeof spec[0] };
    const char *names[NS];
    nb_tensor *ts[NS];
    for (int k = 0; k < NS; k++) {
        names[k] = spec[k].name;
        ts[k] = nb_tensor_new(spec[k].dt, spec[k].rank, spec[k].shape);
        fill(ts[k], k);
    }
    const char *keys[] = {"author", "\xc3\xbcn\xc3\xaf"
                                    "c\xc3\xb6"
                                    "d\xc3\xa9"};
    const char *vals[] = {"nabla test", "v\xc3\xa4rde \"q\"\n"};
    CHECK(nb_st_save(path, NS, names, (const nb_tensor *const *)ts, 2, keys,
                     vals, &st) == NB_OK,
          "%s", st.message);
    for (int k = 0; k < NS; k++)
        nb_tensor_free(ts[k]);
    snprintf(cmd, sizeof cmd, "%s '%s' check '%s'", python, script, path);
    CHECK(system(cmd) == 0, "python check of a C-written file failed");

    /* Python writes, C checks. */
    path_of(path, "from_py.safetensors");
    snprintf(cmd, sizeof cmd, "%s '%s' write '%s'", python, script, path);
    CHECK(system(cmd) == 0, "python write failed");
    nb_st_file *f = nb_st_open(path, &st);
    CHECK(f != NULL, "%s", st.message);
    if (!f)
        return;
    CHECK(nb_st_count(f) == 9, "count %d", nb_st_count(f));
    CHECK(strcmp(nb_st_metadata(f, "source"), "python") == 0 &&
              strcmp(nb_st_metadata(f, "note"), "tab\there") == 0,
          "metadata");
    struct {
        const char *name, *dtype;
        int k;
        int64_t count;
    } want[] = {{"w_f32", "F32", 10, 12},
                {"w_f64", "F64", 11, 8},
                {"s", "F64", 12, 1},
                {"\xc3\xbc/name \xf0\x9f\x98\x80", "F32", 13, 2}};
    for (int w = 0; w < 4; w++) {
        int i = nb_st_find(f, want[w].name);
        CHECK(i == w, "find %s: %d", want[w].name, i);
        if (i < 0)
            continue;
        CHECK(strcmp(nb_st_dtype(f, i), want[w].dtype) == 0, "dtype");
        nb_dtype dt = want[w].dtype[1] == '3' ? NB_F32 : NB_F64;
        nb_tensor *t = nb_tensor_new(dt, 1, (int64_t[]){want[w].count});
        CHECK(nb_st_read(f, i, t, &st) == NB_OK, "%s", st.message);
        for (int64_t e = 0; e < want[w].count; e++)
            CHECK(nb_tensor_get(t, e) == formula(want[w].k, e, dt),
                  "%s[%lld] = %.17g", want[w].name, (long long)e,
                  nb_tensor_get(t, e));
        nb_tensor_free(t);
    }
    CHECK(nb_st_rank(f, 1) == 3 && nb_st_rank(f, 2) == 0, "ranks");
    /* Integer, half and bool dtypes convert. */
    struct {
        const char *name;
        int64_t count;
        double v[5];
    } conv[] = {{"i64", 5, {-3, 0, 7, 0x1p40, -0x1p50}},
                {"f16", 4, {1.5, -2.0, 0x1p-14, 65504.0}},
                {"u8", 3, {0, 200, 255}},
                {"bool", 2, {1, 0}}};
    for (int c = 0; c < 4; c++) {
        int i = nb_st_find(f, conv[c].name);
        nb_tensor *t = nb_tensor_new(NB_F64, 1, (int64_t[]){conv[c].count});
        CHECK(i >= 0 && nb_st_read(f, i, t, &st) == NB_OK, "%s: %s",
              conv[c].name, st.message);
        for (int64_t e = 0; e < conv[c].count; e++)
            CHECK(nb_tensor_get(t, e) == conv[c].v[e], "%s[%lld] = %g",
                  conv[c].name, (long long)e, nb_tensor_get(t, e));
        nb_tensor_free(t);
    }
    int none = nb_st_find(f, "none");
    CHECK(none >= 0 && nb_st_rank(f, none) == 2 && nb_st_shape(f, none)[1] == 0,
          "empty tensor");
    nb_st_close(f);

    /* And as parameters, converting across dtypes. */
    nb_graph *g = nb_graph_new();
    nb_node *w32 = nb_param(g, "w_f32", NB_F64, 2, SHAPE(4, 3));
    nb_node *w64 = nb_param(g, "w_f64", NB_F32, 3, SHAPE(2, 2, 2));
    CHECK(nb_load_params(g, path, 0, NULL) == NB_OK, "%s", nb_graph_error(g));
    for (int e = 0; e < 12; e++)
        CHECK(nb_tensor_get(nb_node_value(w32), e) == formula(10, e, NB_F32),
              "w_f32[%d]", e);
    for (int e = 0; e < 8; e++)
        CHECK(nb_tensor_f32(nb_node_value(w64))[e] ==
                  (float)formula(11, e, NB_F64),
              "w_f64[%d]", e);
    /* An integer tensor is not a parameter value. */
    nb_node *ip = nb_param(g, "i64", NB_F64, 1, SHAPE(5));
    CHECK(nb_load_params(g, path, 1, &ip) < 0, "integer into a parameter");
    CHECK_ERROR(g, "load_params", path, "dtype I64");
    nb_graph_free(g);
}

/* ---- hostile files ---- */

/* Writes an 8-byte size (n, or the header's length when n is UINT64_MAX),
 * the header and `data_len` data bytes. */
static void craft(const char *path, uint64_t n, const char *header,
                  size_t data_len)
{
    size_t hl = strlen(header);
    size_t total = 8 + hl + data_len;
    unsigned char *b = calloc(1, total);
    uint64_t size = n == UINT64_MAX ? hl : n;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(size >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = (unsigned char)(i * 37);
    write_all(path, b, total);
    free(b);
}

static void craft_data(const char *path, const char *header,
                       const unsigned char *data, size_t data_len)
{
    size_t hl = strlen(header);
    unsigned char *b = malloc(8 + hl + data_len);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    memcpy(b + 8 + hl, data, data_len);
    write_all(path, b, 8 + hl + data_len);
    free(b);
}

#define T1(name, dtype, shape, offs)                                           \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape                   \
    ",\"data_offsets\":" offs "}"

static void expect_refused(const char *path, const char *fragment, int line)
{
    nb_status st = {0};
    nb_st_file *f = nb_st_open(path, &st);
    if (f) {
        nb_st_close(f);
        CHECK(0, "line %d: opened a hostile file, expected '%s'", line,
              fragment);
        return;
    }
    CHECK(strstr(st.message, fragment) != NULL, "line %d: '%s' lacks '%s'",
          line, st.message, fragment);
    CHECK(strstr(st.message, path) != NULL, "line %d: '%s' lacks the path",
          line, st.message);
    /* The same file through nb_load_params leaves the parameter alone. */
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F32, 1, SHAPE(2));
    nb_tensor_fill(nb_node_value(a), 5);
    CHECK(nb_load_params(g, path, 0, NULL) < 0, "line %d: load refused", line);
    const char *msg = nb_graph_error(g);
    CHECK(msg && strstr(msg, "load_params") && strstr(msg, fragment),
          "line %d: graph error '%s'", line, msg ? msg : "(none)");
    CHECK(nb_tensor_get(nb_node_value(a), 0) == 5, "line %d: unchanged", line);
    nb_graph_free(g);
}
#define REFUSED(path, fragment) expect_refused(path, fragment, __LINE__)

static void test_hostile(void)
{
    char p[256];
    path_of(p, "hostile.safetensors");
    const char *ok_a = T1("a", "F32", "[2]", "[0,8]");

    write_all(p, "\x10\0\0", 3);
    REFUSED(p, "too short for the 8-byte header size");
    craft(p, UINT64_C(1) << 40, "{}", 0);
    REFUSED(p, "is absurd");
    craft(p, 200, "{}", 10);
    REFUSED(p, "header size 200 exceeds the file");
    char h[4096];
    snprintf(h, sizeof h, "{%s", ok_a);
    craft(p, UINT64_MAX, h, 8);
    REFUSED(p, "bad JSON: unterminated object");
    snprintf(h, sizeof h, "{%s,}", ok_a);
    craft(p, UINT64_MAX, h, 8);
    REFUSED(p, "bad JSON: expected a string key at byte");
    snprintf(h, sizeof h, "{%s,%s}", ok_a, T1("a", "F32", "[2]", "[8,16]"));
    craft(p, UINT64_MAX, h, 16);
    REFUSED(p, "duplicate key 'a'");
    craft(p, UINT64_MAX, "{" T1("a", "F17", "[2]", "[0,8]") "}", 8);
    REFUSED(p, "unknown dtype 'F17'");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[-1,2]", "[0,8]") "}", 8);
    REFUSED(p, "shape extent 0 is negative");
    craft(p, UINT64_MAX,
          "{" T1("a", "F32", "[4294967296,4294967296,4]", "[0,8]") "}", 8);
    REFUSED(p, "element count of the shape overflows");
    craft(p, UINT64_MAX,
          "{" T1("a", "F32", "[99999999999999999999]", "[0,8]") "}", 8);
    REFUSED(p, "shape extent 0 overflows");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2.5]", "[0,8]") "}", 8);
    REFUSED(p, "is not an integer");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2]", "[0,4]") "}", 4);
    REFUSED(p, "data_offsets [0, 4] span 4 bytes, but F32 [2] needs 8");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2]", "[8,16]") "}", 8);
    REFUSED(p, "beyond the end of the file");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2]", "[0,8]") "}", 5);
    REFUSED(p, "truncated");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2]", "[8,0]") "}", 8);
    REFUSED(p, "end before they begin");
    craft(p, UINT64_MAX,
          "{" T1("a", "F32", "[2]", "[0,8]") "," T1("b", "F32", "[2]",
                                                    "[4,12]") "}",
          12);
    REFUSED(p, "tensors 'a' and 'b' overlap");
    craft(p, UINT64_MAX,
          "{" T1("a", "F32", "[1]", "[0,4]") "," T1("b", "F32", "[1]",
                                                    "[8,12]") "}",
          12);
    REFUSED(p, "hole in the data section: bytes [4, 8)");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[1]", "[0,4]") "}", 8);
    REFUSED(p, "bytes [4, 8) of the data section are not covered");
    craft(p, UINT64_MAX, "{}", 8);
    REFUSED(p, "no tensors");
    craft(p, UINT64_MAX, "{\"__metadata__\":{\"k\":1}}", 0);
    REFUSED(p, "__metadata__ value of 'k' is not a string");
    craft(p, UINT64_MAX, "{\"__metadata__\":[]}", 0);
    REFUSED(p, "__metadata__ is not an object");
    craft(p, UINT64_MAX, "[1,2]", 0);
    REFUSED(p, "header is not a JSON object");
    craft(p, UINT64_MAX, "{" T1("a\xff", "F32", "[2]", "[0,8]") "}", 8);
    REFUSED(p, "invalid UTF-8");
    craft(p, UINT64_MAX, "{" T1("\xc0\xa1", "F32", "[2]", "[0,8]") "}", 8);
    REFUSED(p, "invalid UTF-8"); /* overlong */
    char deep[512] = "{\"a\":";
    for (int i = 0; i < 100; i++)
        strcat(deep, "[");
    craft(p, UINT64_MAX, deep, 0);
    REFUSED(p, "nested too deep");
    craft(p, UINT64_MAX, "{" T1("a\\x", "F32", "[2]", "[0,8]") "}", 8);
    REFUSED(p, "invalid escape");
    craft(p, UINT64_MAX, "{" T1("a\\ud800", "F32", "[2]", "[0,8]") "}", 8);
    REFUSED(p, "surrogate");
    craft(p, UINT64_MAX, "{" T1("a\\u0000", "F32", "[2]", "[0,8]") "}", 8);
    REFUSED(p, "NUL");
    craft(p, UINT64_MAX, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8);
    REFUSED(p, "missing \"data_offsets\"");
    craft(p, UINT64_MAX,
          "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"offsets\":[0,8]}}", 8);
    REFUSED(p, "unexpected key 'offsets'");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[02]", "[0,8]") "}", 8);
    REFUSED(p, "leading zero");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2]", "[0,8,9]") "}", 8);
    REFUSED(p, "data_offsets is not a pair");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2]", "[0,8]") "} x", 8);
    REFUSED(p, "trailing characters");
    char big[400] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[";
    for (int i = 0; i < 65; i++)
        strcat(big, i ? ",1" : "1");
    strcat(big, "],\"data_offsets\":[0,4]}}");
    craft(p, UINT64_MAX, big, 4);
    REFUSED(p, "rank 65 exceeds");
    char missing[256];
    path_of(missing, "does_not_exist.safetensors");
    REFUSED(missing, "cannot open");
    REFUSED(DIR_, "not a regular file");
    /* A zero-length header is not JSON either. */
    craft(p, UINT64_MAX, "", 0);
    REFUSED(p, "unexpected end of text");

    /* Files that are valid but do not fit the graph. */
    nb_graph *g = nb_graph_new();
    nb_node *a = nb_param(g, "a", NB_F32, 1, SHAPE(2));
    nb_node *b = nb_param(g, "b", NB_F64, 2, SHAPE(2, 2));
    nb_tensor_fill(nb_node_value(a), 1);
    nb_tensor_fill(nb_node_value(b), 2);
    craft(p, UINT64_MAX,
          "{" T1("a", "F32", "[2]", "[0,8]") "," T1("b", "F64", "[4]",
                                                    "[8,40]") "}",
          40);
    CHECK(nb_load_params(g, p, 0, NULL) < 0, "shape mismatch");
    CHECK_ERROR(g, "load_params", p, "tensor 'b' has shape [4] in the file",
                "[2,2] in the graph");
    CHECK(nb_tensor_get(nb_node_value(a), 0) == 1,
          "a unchanged although it matched");
    craft(p, UINT64_MAX, "{" T1("a", "F32", "[2]", "[0,8]") "}", 8);
    CHECK(nb_load_params(g, p, 0, NULL) < 0, "missing");
    CHECK_ERROR(g, "load_params", p, "no tensor 'b' in the file");
    CHECK(nb_tensor_get(nb_node_value(a), 0) == 1, "a unchanged");
    CHECK(nb_load_params(g, p, 1, &a) == NB_OK, "%s", nb_graph_error(g));
    nb_node *op = nb_neg(g, a);
    CHECK(nb_load_params(g, p, 1, &op) < 0, "op node");
    CHECK_ERROR(g, "is not a parameter or constant");
    nb_graph *other = nb_graph_new();
    nb_node *stranger = nb_param(other, "a", NB_F32, 1, SHAPE(2));
    CHECK(nb_load_params(g, p, 1, &stranger) < 0, "foreign node");
    CHECK_ERROR(g, "belongs to another graph");
    CHECK(nb_load_params(g, NULL, 0, NULL) < 0, "NULL path");
    CHECK_ERROR(g, "path is NULL");
    nb_graph_free(other);
    nb_graph_free(g);
}

/* Dtypes other than F32/F64, with hand-computed bit patterns. */
static void test_conversions(void)
{
    char p[256];
    nb_status st = {0};
    path_of(p, "dtypes.safetensors");
    static const unsigned char data[] = {
        0x80, 0x3f, 0x60, 0xc0,             /* BF16 1.0, -3.5 */
        0x01, 0x00, 0x00, 0x7c, 0x00, 0xfc, /* F16 2^-24, inf, -inf */
        0xff, 0x7f,                         /* I8 -1, 127 */
        0xff, 0xff,                         /* U16 65535 */
        0x00, 0x00, 0x00, 0x80,             /* I32 -2^31 */
        0x3c,                               /* F8_E5M2 1.0 */
    };
    /* clang-format off */
    static const char header[] =
        "{" T1("bf", "BF16", "[2]", "[0,4]") ","
        T1("h", "F16", "[3]", "[4,10]") ","
        T1("i8", "I8", "[2]", "[10,12]") ","
        T1("u16", "U16", "[1]", "[12,14]") ","
        T1("i32", "I32", "[1]", "[14,18]") ","
        T1("f8", "F8_E5M2", "[1]", "[18,19]") "}";
    /* clang-format on */
    craft_data(p, header, data, sizeof data);
    nb_st_file *f = nb_st_open(p, &st);
    CHECK(f != NULL, "%s", st.message);
    if (!f)
        return;
    struct {
        const char *name;
        int n;
        double v[3];
    } want[] = {{"bf", 2, {1.0, -3.5}},
                {"h", 3, {0x1p-24, INFINITY, -INFINITY}},
                {"i8", 2, {-1, 127}},
                {"u16", 1, {65535}},
                {"i32", 1, {-2147483648.0}}};
    for (int w = 0; w < 5; w++) {
        nb_tensor *t = nb_tensor_new(NB_F64, 1, (int64_t[]){want[w].n});
        CHECK(nb_st_read(f, nb_st_find(f, want[w].name), t, &st) == NB_OK, "%s",
              st.message);
        for (int i = 0; i < want[w].n; i++)
            CHECK(nb_tensor_get(t, i) == want[w].v[i], "%s[%d] = %g",
                  want[w].name, i, nb_tensor_get(t, i));
        nb_tensor_free(t);
    }
    nb_tensor *t = nb_tensor_new(NB_F32, 1, SHAPE(1));
    CHECK(nb_st_read(f, nb_st_find(f, "f8"), t, &st) < 0 &&
              strstr(st.message, "cannot convert dtype F8_E5M2"),
          "%s", st.message);
    nb_tensor_free(t);
    nb_st_close(f);

    /* The JSON value limit. */
    size_t n = 1100000;
    char *big = malloc(2 * n + 16);
    strcpy(big, "{\"a\":[0");
    size_t len = strlen(big);
    for (size_t i = 1; i < n; i++) {
        big[len++] = ',';
        big[len++] = '0';
    }
    strcpy(big + len, "]}");
    craft(p, UINT64_MAX, big, 0);
    free(big);
    REFUSED(p, "more than 1048576 values");
}

/* ---- fuzzing ---- */

static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);
static uint64_t next_rand(void)
{
    /* xorshift64*: a fixed seed makes every run the same. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static void exercise(const char *path, nb_graph *g, int *opened)
{
    nb_status st = {0};
    nb_st_file *f = nb_st_open(path, &st);
    if (!f) {
        CHECK(st.message[0] != '\0', "a refusal has a message");
        return;
    }
    (*opened)++;
    for (int i = 0; i < nb_st_count(f); i++) {
        int rank = nb_st_rank(f, i);
        int64_t count = 1;
        for (int d = 0; d < rank && count > 0; d++) {
            int64_t e = nb_st_shape(f, i)[d];
            count = e > (1 << 20) ? (1 << 20) + 1 : count * e;
            if (count > (1 << 20)) /* also keeps the product from overflowing */
                break;
        }
        for (int d = 0; d < rank; d++)
            if (nb_st_shape(f, i)[d] == 0)
                count = 0;
        if (count > (1 << 20))
            continue;
        nb_tensor *t = nb_tensor_new(NB_F64, 1, &count);
        if (t) {
            nb_st_read(f, i, t, &st);
            nb_tensor_free(t);
        }
        nb_st_find(f, nb_st_name(f, i));
        (void)nb_st_dtype(f, i);
    }
    for (int i = 0; i < nb_st_metadata_count(f); i++)
        nb_st_metadata(f, nb_st_metadata_key(f, i));
    nb_st_close(f);
    nb_load_params(g, path, 0, NULL);
    nb_graph_clear_error(g);
}

static void test_fuzz(void)
{
    char path[256], fpath[256];
    nb_status st = {0};
    path_of(path, "fuzz_base.safetensors");
    path_of(fpath, "fuzz.safetensors");
    nb_tensor *a = nb_tensor_new(NB_F32, 2, SHAPE(2, 3));
    nb_tensor *b = nb_tensor_new(NB_F64, 1, SHAPE(3));
    nb_tensor *c = nb_tensor_new(NB_F64, 0, NULL);
    fill(a, 1);
    fill(b, 2);
    const char *names[] = {"w", "b\xc3\xa9", "c\\"};
    const nb_tensor *ts[] = {a, b, c};
    const char *keys[] = {"epoch"}, *vals[] = {"12"};
    CHECK(nb_st_save(path, 3, names, ts, 1, keys, vals, &st) == NB_OK, "%s",
          st.message);
    nb_tensor_free(a);
    nb_tensor_free(b);
    nb_tensor_free(c);
    size_t len;
    unsigned char *base = read_all(path, &len);
    if (!base)
        return;
    size_t header_end = 8 + (size_t)le64(base);
    unsigned char *buf = malloc(len + 16);
    nb_graph *g = nb_graph_new();
    nb_param(g, "w", NB_F32, 2, SHAPE(2, 3));
    nb_param(g, "b\xc3\xa9", NB_F64, 1, SHAPE(3));
    static const char interesting[] = "{}[]\",:0123456789-+.eE\\u \t\xff\x80";
    int opened = 0;
    /* NABLA_IO_FUZZ_ROUNDS=1000000 makes a long run for a sanitizer build. */
    const char *env = getenv("NABLA_IO_FUZZ_ROUNDS");
    const int rounds = env && atoi(env) > 0 ? atoi(env) : 3000;
    for (int r = 0; r < rounds; r++) {
        size_t n = len;
        memcpy(buf, base, len);
        int edits = 1 + (int)(next_rand() % 3);
        for (int e = 0; e < edits && n > 0; e++) {
            /* Most edits hit the header, where the parsing is. */
            size_t span = next_rand() % 4 ? header_end : n;
            size_t at = (size_t)(next_rand() % (span < n ? span : n));
            switch (next_rand() % 6) {
            case 0:
                buf[at] ^= (unsigned char)(1u << (next_rand() % 8));
                break;
            case 1:
                buf[at] = (unsigned char)next_rand();
                break;
            case 2:
                buf[at] = (unsigned char)
                    interesting[next_rand() % (sizeof interesting - 1)];
                break;
            case 3:
                n = at;
                break; /* truncate */
            case 4:    /* delete a byte */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            case 5: /* nudge the header size */
                buf[next_rand() % 2] += (unsigned char)(next_rand() % 5) - 2;
                break;
            }
        }
        write_all(fpath, buf, n);
        exercise(fpath, g, &opened);
    }
    printf("fuzz: %d corrupted files, %d still parsed as valid\n", rounds,
           opened);
    CHECK(opened < rounds, "most corruptions are refused");
    nb_graph_free(g);
    free(buf);
    free(base);
}

/* ---- atomic saving ---- */

static void test_atomic(void)
{
    char path[256], dirpath[256], inner[300];
    path_of(path, "atomic.safetensors");
    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(4));
    fill(nb_node_value(w), 1);
    CHECK(nb_save_params(g, path, 0, NULL) == NB_OK, "%s", nb_graph_error(g));
    size_t len0, len1;
    unsigned char *before = read_all(path, &len0);

    /* A directory that does not exist. */
    char nodir[256];
    path_of(nodir, "no/such/dir/p.safetensors");
    CHECK(nb_save_params(g, nodir, 0, NULL) < 0, "missing directory");
    CHECK_ERROR(g, "save_params", nodir, "cannot create the temporary file");

    /* A rename that fails: the target is a non-empty directory. */
    path_of(dirpath, "a_directory");
    mkdir(dirpath, 0755);
    snprintf(inner, sizeof inner, "%s/keep", dirpath);
    write_all(inner, "x", 1);
    CHECK(nb_save_params(g, dirpath, 0, NULL) < 0, "rename onto a directory");
    CHECK_ERROR(g, "save_params", dirpath, "rename");
    CHECK(count_temp_files() == 0, "no temporary file after a failed rename");

    /* A write cut short: the file size limit makes write fail with EFBIG
     * (SIGXFSZ ignored) half way through a 512 KiB tensor. */
    nb_node *big = nb_param(g, "big", NB_F64, 2, SHAPE(256, 256));
    fill(nb_node_value(big), 2);
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0) {
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = old;
        lim.rlim_cur = 64 * 1024;
        if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
            int rc = nb_save_params(g, path, 0, NULL);
            setrlimit(RLIMIT_FSIZE, &old);
            CHECK(rc < 0, "save beyond the file size limit fails");
            CHECK_ERROR(g, "save_params", path, "saving failed at write",
                        "previous file");
        } else {
            printf("note: setrlimit failed; skipping the short-write case\n");
        }
        signal(SIGXFSZ, prev);
    }
    CHECK(count_temp_files() == 0, "no temporary file after a failed write");

    /* A save refused before writing (duplicate names). */
    nb_param(g, "w", NB_F64, 1, SHAPE(1));
    CHECK(nb_save_params(g, path, 0, NULL) < 0, "duplicate");
    CHECK_ERROR(g, "duplicate name 'w'");

    unsigned char *after = read_all(path, &len1);
    CHECK(before && after && len0 == len1 && memcmp(before, after, len0) == 0,
          "the old file is unchanged after failed saves");
    free(before);
    free(after);
    CHECK(count_temp_files() == 0, "no temporary files left");
    nb_graph_free(g);
}

/* ---- narrowing, stale temporary files, running out of memory ---- */

static void test_narrowing(void)
{
    char path[256];
    path_of(path, "wide.safetensors");
    nb_status st = {0};
    nb_tensor *wide = nb_tensor_new(NB_F64, 1, SHAPE(5));
    /* 3.4028235e38 is above FLT_MAX but rounds to it: in range. */
    nb_tensor_copy_from_f64(
        wide, (const double[]){1, -2, 1e300, 3.4028235e38, INFINITY}, 5);
    const char *names[] = {"w"};
    const nb_tensor *ts[] = {wide};
    CHECK(nb_st_save(path, 1, names, ts, 0, NULL, NULL, &st) == NB_OK, "%s",
          st.message);

    nb_graph *g = nb_graph_new();
    nb_node *w = nb_param(g, "w", NB_F32, 1, SHAPE(5));
    nb_tensor_fill(nb_node_value(w), 7);
    CHECK(nb_load_params(g, path, 0, NULL) == NB_ERR_IO, "1e300 into f32");
    CHECK_ERROR(g, path, "tensor 'w'", "element 2", "1e+300", "f32");
    CHECK(nb_tensor_get(nb_node_value(w), 0) == 7, "w untouched");

    nb_st_file *f = nb_st_open(path, &st);
    CHECK(f != NULL, "%s", st.message);
    nb_tensor *narrow = nb_tensor_new(NB_F32, 1, SHAPE(5));
    nb_tensor_fill(narrow, 7);
    CHECK(nb_st_read(f, 0, narrow, &st) == NB_ERR_IO && st.code == NB_ERR_IO &&
              strstr(st.message, "element 2") && strstr(st.message, path),
          "%s", st.message);
    CHECK(nb_tensor_get(narrow, 0) == 7, "dst untouched");
    nb_tensor *back = nb_tensor_new(NB_F64, 1, SHAPE(5));
    CHECK(nb_st_read(f, 0, back, &st) == NB_OK &&
              nb_tensor_get(back, 2) == 1e300,
          "f64 keeps 1e300: %s", st.message);
    nb_st_close(f);

    /* Without the out-of-range value everything loads, and the value just
     * above FLT_MAX rounds to it while infinity stays data. */
    nb_tensor_set(wide, 2, -1e30);
    CHECK(nb_st_save(path, 1, names, ts, 0, NULL, NULL, &st) == NB_OK, "%s",
          st.message);
    CHECK(nb_load_params(g, path, 0, NULL) == NB_OK, "%s", nb_graph_error(g));
    CHECK(nb_tensor_get(nb_node_value(w), 3) == (double)FLT_MAX &&
              isinf(nb_tensor_get(nb_node_value(w), 4)) &&
              nb_tensor_get(nb_node_value(w), 2) == (double)-1e30f,
          "rounded values");
    nb_tensor_free(wide);
    nb_tensor_free(narrow);
    nb_tensor_free(back);
    nb_graph_free(g);
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void test_stale_temps(void)
{
    char path[256], dead_tmp[300], live_tmp[300], other_tmp[300], odd[300];
    path_of(path, "stale.safetensors");
    /* A pid that certainly names no process: a child that has been reaped. */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    CHECK(dead > 0 && waitpid(dead, NULL, 0) == dead, "fork");
    pid_t live = getppid();
    snprintf(dead_tmp, sizeof dead_tmp, "%s.tmp.%ld", path, (long)dead);
    snprintf(live_tmp, sizeof live_tmp, "%s.tmp.%ld", path, (long)live);
    snprintf(other_tmp, sizeof other_tmp, DIR_ "/other.safetensors.tmp.%ld",
             (long)dead);
    snprintf(odd, sizeof odd, "%s.tmp.12x", path);
    const char *junk = "half a file";
    write_all(dead_tmp, junk, strlen(junk));
    write_all(live_tmp, junk, strlen(junk));
    write_all(other_tmp, junk, strlen(junk));
    write_all(odd, junk, strlen(junk));

    nb_tensor *t = nb_tensor_new(NB_F32, 1, SHAPE(3));
    const char *names[] = {"t"};
    const nb_tensor *ts[] = {t};
    nb_status st = {0};
    CHECK(nb_st_save(path, 1, names, ts, 0, NULL, NULL, &st) == NB_OK, "%s",
          st.message);
    CHECK(!exists(dead_tmp), "the dead process's %s is removed", dead_tmp);
    CHECK(exists(live_tmp), "a live process's temporary file is kept");
    CHECK(exists(other_tmp), "another file's temporary file is kept");
    CHECK(exists(odd), "a name that holds no pid is kept");
    remove(live_tmp);
    remove(other_tmp);
    remove(odd);
    nb_tensor_free(t);
}

/* Fails the fail_at-th allocation through the hook (counting from 1). */
static long alloc_count, fail_at;

static void *failing_alloc(size_t size, size_t align, void *user)
{
    (void)user;
    void *p = NULL;
    if (++alloc_count == fail_at)
        return NULL;
    return posix_memalign(&p, align, size) == 0 ? p : NULL;
}

static void plain_free(void *ptr, void *user)
{
    (void)user;
    free(ptr);
}

static void test_out_of_memory(void)
{
    char path[256];
    path_of(path, "nomem.safetensors");
    nb_tensor *a = nb_tensor_new(NB_F32, 2, SHAPE(2, 3));
    nb_tensor *b = nb_tensor_new(NB_F64, 1, SHAPE(4));
    fill(a, 1);
    fill(b, 2);
    const char *names[] = {"a", "b"};
    const nb_tensor *ts[] = {a, b};
    const char *keys[] = {"k"}, *vals[] = {"v"};
    nb_status st = {0};
    CHECK(nb_st_save(path, 2, names, ts, 1, keys, vals, &st) == NB_OK, "%s",
          st.message);
    size_t len0;
    unsigned char *before = read_all(path, &len0);

    /* Every allocation of an open in turn: NB_ERR_NOMEM each time, among
     * them the JSON parser's. */
    const nb_allocator failing = {failing_alloc, plain_free, NULL};
    bool json_seen = false, opened = false;
    for (fail_at = 1; fail_at < 200 && !opened; fail_at++) {
        alloc_count = 0;
        nb_set_allocator(&failing);
        nb_st_file *f = nb_st_open(path, &st);
        nb_set_allocator(NULL);
        opened = f != NULL;
        if (!f) {
            CHECK(st.code == NB_ERR_NOMEM && strstr(st.message, path),
                  "allocation %ld of an open: code %d '%s'", fail_at, st.code,
                  st.message);
            json_seen = json_seen || strstr(st.message, "JSON");
        }
        nb_st_close(f);
    }
    CHECK(opened && json_seen, "opened %d, the JSON parser failed %d", opened,
          json_seen);

    /* Every allocation of a save in turn: NB_ERR_NOMEM, the old file
     * intact and no temporary file, until the save succeeds. */
    fill(a, 3);
    bool saved = false;
    for (fail_at = 1; fail_at < 200 && !saved; fail_at++) {
        alloc_count = 0;
        nb_set_allocator(&failing);
        int rc = nb_st_save(path, 2, names, ts, 1, keys, vals, &st);
        nb_set_allocator(NULL);
        saved = rc == NB_OK;
        if (!saved) {
            size_t len1;
            unsigned char *after = read_all(path, &len1);
            CHECK(rc == NB_ERR_NOMEM && st.code == rc,
                  "allocation %ld of a save: %d '%s'", fail_at, rc, st.message);
            CHECK(after && len1 == len0 && memcmp(after, before, len0) == 0,
                  "allocation %ld of a save changed the file", fail_at);
            free(after);
        }
        CHECK(count_temp_files() == 0, "no temporary file");
    }
    CHECK(saved, "the save succeeds once no allocation fails");
    free(before);
    nb_tensor_free(a);
    nb_tensor_free(b);
}

/* ---- checkpoints ---- */

enum { N_SAMPLES = 40, N_IN = 4, N_HID = 16, N_OUT = 3, BATCH = 8 };

typedef struct model {
    nb_graph *g;
    nb_node *x, *y, *loss;
    nb_node *params[4];
    nb_optimizer *opt;
} model;

/* y = softmax(dropout(tanh(x W1 + b1)) W2 + b2), cross-entropy on class
 * indices; weights drawn from the graph's RNG. */
static void build(model *m, uint64_t seed, nb_optim_kind kind, bool with_b2)
{
    m->g = nb_graph_new();
    nb_graph *g = m->g;
    nb_graph_seed(g, seed);
    m->x = nb_input(g, "x", NB_F64, 2, SHAPE(NB_DYNAMIC, N_IN));
    m->y = nb_input(g, "y", NB_F64, 1, SHAPE(NB_DYNAMIC));
    nb_node *W1 = nb_param(g, "W1", NB_F64, 2, SHAPE(N_IN, N_HID));
    nb_node *b1 = nb_param(g, "b1", NB_F64, 1, SHAPE(N_HID));
    nb_node *W2 = nb_param(g, "W2", NB_F64, 2, SHAPE(N_HID, N_OUT));
    nb_node *b2 = with_b2 ? nb_param(g, "b2", NB_F64, 1, SHAPE(N_OUT)) : NULL;
    nb_node *params[] = {W1, b1, W2, b2};
    memcpy(m->params, params, sizeof params);
    for (int p = 0; p < 4; p++) {
        if (!params[p])
            continue;
        nb_tensor *t = nb_node_value(params[p]);
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            nb_tensor_set(t, i, 0.5 * nb_rng_normal(g));
    }
    nb_node *h =
        nb_dropout(g, nb_tanh(g, nb_add(g, nb_matmul(g, m->x, W1), b1)), 0.25);
    nb_node *z = nb_matmul(g, h, W2);
    if (b2)
        z = nb_add(g, z, b2);
    m->loss = nb_softmax_ce_index_loss(g, z, m->y);
    nb_optim_config cfg = {.kind = kind, .lr = 0.05};
    if (kind == NB_OPTIM_SGD)
        cfg.momentum = 0.9;
    m->opt = nb_optimizer_new(g, &cfg, 0, NULL);
    CHECK(m->loss && m->opt, "build: %s", nb_graph_error(g));
}

static void unbuild(model *m)
{
    nb_optimizer_free(m->opt);
    nb_graph_free(m->g);
}

static void sample(int i, double *x, double *label)
{
    for (int j = 0; j < N_IN; j++)
        x[j] = base_value(j + 20, i) * 2;
    *label = (double)((x[0] + x[1] > 0) + (x[2] > 0.3));
}

/* One epoch: a shuffle drawn from the graph's RNG (Fisher-Yates with
 * nb_rng_below), then N_SAMPLES / BATCH Adam steps. */
static void train_epoch(model *m)
{
    int perm[N_SAMPLES];
    for (int i = 0; i < N_SAMPLES; i++)
        perm[i] = i;
    for (int i = N_SAMPLES - 1; i > 0; i--) {
        int j = (int)nb_rng_below(m->g, i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int s = 0; s < N_SAMPLES; s += BATCH) {
        double xb[BATCH][N_IN], yb[BATCH];
        for (int r = 0; r < BATCH; r++)
            sample(perm[s + r], xb[r], &yb[r]);
        nb_feed(m->g, m->x, 2, SHAPE(BATCH, N_IN), xb);
        nb_feed(m->g, m->y, 1, SHAPE(BATCH), yb);
        if (nb_forward(m->g, m->loss) || nb_backward(m->g, m->loss) ||
            nb_optimizer_step(m->opt)) {
            CHECK(0, "training step: %s", nb_graph_error(m->g));
            return;
        }
    }
}

static bool same_params(const model *a, const model *b)
{
    for (int p = 0; p < 4; p++)
        if (!same_bits(nb_node_value(a->params[p]),
                       nb_node_value(b->params[p])))
            return false;
    return true;
}

static void snapshot(model *m, unsigned char *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (int p = 0; p < 4; p++) {
        if (!m->params[p])
            continue;
        const nb_tensor *t = nb_node_value(m->params[p]);
        if (*len + tensor_bytes(t) <= cap) {
            memcpy(buf + *len, nb_tensor_cdata(t), tensor_bytes(t));
            *len += tensor_bytes(t);
        }
    }
    uint64_t rng[4];
    nb_rng_get_state(m->g, rng);
    if (*len + sizeof rng <= cap) {
        memcpy(buf + *len, rng, sizeof rng);
        *len += sizeof rng;
    }
}

static void test_checkpoint(void)
{
    enum { EPOCHS = 5, K = 2 };
    char path[256], bare[256], params[256];
    path_of(path, "run.ckpt.safetensors");
    path_of(bare, "bare.ckpt.safetensors");
    path_of(params, "only_params.safetensors");

    model ref;
    build(&ref, 7, NB_OPTIM_ADAM, true);
    for (int e = 0; e < EPOCHS; e++)
        train_epoch(&ref);

    model run;
    build(&run, 7, NB_OPTIM_ADAM, true);
    for (int e = 0; e < K; e++)
        train_epoch(&run);
    nb_optimizer_set_lr(run.opt, 0.05); /* same rate, set explicitly */
    CHECK(nb_checkpoint_save(run.g, run.opt, K, path) == NB_OK, "%s",
          nb_graph_error(run.g));
    unbuild(&run);

    /* Rebuilt from another seed, so only the checkpoint can make it match. */
    build(&run, 12345, NB_OPTIM_ADAM, true);
    int64_t epoch = -1;
    CHECK(nb_checkpoint_load(run.g, run.opt, &epoch, path) == NB_OK, "%s",
          nb_graph_error(run.g));
    CHECK(epoch == K, "epoch %lld", (long long)epoch);
    CHECK(nb_optimizer_steps(run.opt) == K * N_SAMPLES / BATCH, "steps %lld",
          (long long)nb_optimizer_steps(run.opt));
    for (int64_t e = epoch; e < EPOCHS; e++)
        train_epoch(&run);
    CHECK(
        same_params(&ref, &run),
        "resumed training ends bit for bit where uninterrupted training does");
    CHECK(nb_optimizer_steps(run.opt) == nb_optimizer_steps(ref.opt), "steps");
    unbuild(&run);

    /* Without the checkpoint (a fresh optimiser and RNG) it would not. */
    build(&run, 7, NB_OPTIM_ADAM, true);
    for (int e = 0; e < K; e++)
        train_epoch(&run);
    CHECK(nb_save_params(run.g, params, 0, NULL) == NB_OK, "%s",
          nb_graph_error(run.g));
    unbuild(&run);
    build(&run, 7, NB_OPTIM_ADAM, true);
    CHECK(nb_load_params(run.g, params, 0, NULL) == NB_OK, "%s",
          nb_graph_error(run.g));
    for (int e = K; e < EPOCHS; e++)
        train_epoch(&run);
    CHECK(!same_params(&ref, &run), "params alone do not resume exactly");
    unbuild(&run);
    unbuild(&ref);

    /* The learning rate is restored exactly. */
    build(&run, 1, NB_OPTIM_ADAM, true);
    nb_optimizer_set_lr(run.opt, 0.0123456789);
    CHECK(nb_checkpoint_save(run.g, run.opt, 0, path) == NB_OK, "%s",
          nb_graph_error(run.g));
    model other;
    build(&other, 2, NB_OPTIM_ADAM, true);
    CHECK(nb_checkpoint_load(other.g, other.opt, NULL, path) == NB_OK, "%s",
          nb_graph_error(other.g));
    CHECK(nb_optimizer_lr(other.opt) == 0.0123456789, "lr %.17g",
          nb_optimizer_lr(other.opt));
    unbuild(&other);
    unbuild(&run);

    /* Mismatches are refused and change nothing. */
    build(&run, 3, NB_OPTIM_ADAM, true);
    train_epoch(&run);
    CHECK(nb_checkpoint_save(run.g, run.opt, 1, path) == NB_OK, "%s",
          nb_graph_error(run.g));
    CHECK(nb_checkpoint_save(run.g, NULL, 1, bare) == NB_OK, "%s",
          nb_graph_error(run.g));
    unbuild(&run);

    unsigned char s0[4096], s1[4096];
    size_t l0, l1;
    build(&other, 4, NB_OPTIM_SGD, true);
    snapshot(&other, s0, sizeof s0, &l0);
    CHECK(nb_checkpoint_load(other.g, other.opt, NULL, path) < 0, "kind");
    CHECK_ERROR(other.g, "checkpoint_load", path,
                "saved with optimiser 'adam', this one is 'sgd'");
    snapshot(&other, s1, sizeof s1, &l1);
    CHECK(l0 == l1 && memcmp(s0, s1, l0) == 0 &&
              nb_optimizer_steps(other.opt) == 0,
          "unchanged");
    /* Without an optimiser, parameters and RNG still load. */
    CHECK(nb_checkpoint_load(other.g, NULL, &epoch, path) == NB_OK, "%s",
          nb_graph_error(other.g));
    CHECK(epoch == 1, "epoch");
    unbuild(&other);

    build(&other, 4, NB_OPTIM_ADAM, true);
    CHECK(nb_checkpoint_load(other.g, other.opt, NULL, bare) < 0, "bare");
    CHECK_ERROR(other.g, "holds no optimiser state");
    CHECK(nb_checkpoint_load(other.g, other.opt, NULL, params) < 0, "params");
    CHECK_ERROR(other.g, "not a nabla checkpoint");
    unbuild(&other);

    build(&other, 4, NB_OPTIM_ADAM, false); /* no b2 */
    snapshot(&other, s0, sizeof s0, &l0);
    CHECK(nb_checkpoint_load(other.g, other.opt, NULL, path) < 0, "no b2");
    CHECK_ERROR(other.g, "holds 12 tensors", "built differently");
    snapshot(&other, s1, sizeof s1, &l1);
    CHECK(l0 == l1 && memcmp(s0, s1, l0) == 0, "unchanged");
    unbuild(&other);

    /* Same count, different shape: W2 wider. */
    nb_graph *g = nb_graph_new();
    nb_param(g, "W1", NB_F64, 2, SHAPE(N_IN, N_HID));
    nb_param(g, "b1", NB_F64, 1, SHAPE(N_HID));
    nb_param(g, "W2", NB_F64, 2, SHAPE(N_HID, N_OUT + 1));
    nb_param(g, "b2", NB_F64, 1, SHAPE(N_OUT));
    CHECK(nb_checkpoint_load(g, NULL, NULL, bare) < 0, "shape");
    CHECK_ERROR(g, "tensor 'W2' has shape [16,3] in the file");
    nb_graph_free(g);

    /* Hand-made metadata that lies. */
    nb_tensor *t = nb_tensor_new(NB_F64, 1, SHAPE(1));
    const char *names[] = {"p"};
    const nb_tensor *ts[] = {t};
    const char *keys[] = {"format", "format_version", "epoch", "rng_state"};
    const char *bad_rng[] = {"nabla.checkpoint", "2", "3", "12 zz 1 1"};
    const char *bad_epoch[] = {"nabla.checkpoint", "2", "3x", "1 2 3 4"};
    const char *bad_version[] = {"nabla.checkpoint", "9", "3", "1 2 3 4"};
    const char *zero_rng[] = {"nabla.checkpoint", "2", "3", "0 0 0 0"};
    const char *const *cases[] = {bad_rng, bad_epoch, bad_version, zero_rng};
    const char *frag[] = {"rng_state", "epoch", "version '9'", "all zero"};
    nb_status st = {0};
    g = nb_graph_new();
    nb_node *pp = nb_param(g, "p", NB_F64, 1, SHAPE(1));
    for (int c = 0; c < 4; c++) {
        CHECK(nb_st_save(path, 1, names, ts, 4, keys, cases[c], &st) == NB_OK,
              "%s", st.message);
        nb_tensor_fill(nb_node_value(pp), 9);
        CHECK(nb_checkpoint_load(g, NULL, NULL, path) < 0, "case %d", c);
        CHECK_ERROR(g, frag[c]);
        CHECK(nb_tensor_get(nb_node_value(pp), 0) == 9, "unchanged");
    }
    nb_graph_free(g);
    nb_tensor_free(t);
}

/* A checkpoint saved with one configuration is refused by an optimiser
 * configured otherwise, naming the field and both values; the parameter
 * stays as it was. */
static void test_checkpoint_config(void)
{
    char path[256];
    path_of(path, "config.ckpt.safetensors");
    const nb_optim_config adam = {.kind = NB_OPTIM_ADAM};
    const nb_optim_config sgd = {.kind = NB_OPTIM_SGD, .momentum = 0.9};
    const struct {
        nb_optim_config saved, loaded;
        const char *field, *was, *now;
    } cases[] = {
        {adam,
         {.kind = NB_OPTIM_ADAM, .beta1 = 0.5},
         "beta1",
         "beta1 0.9",
         "this one 0.5"},
        {adam,
         {.kind = NB_OPTIM_ADAM, .beta2 = 0.9},
         "beta2",
         "beta2 0.999",
         "this one 0.9"},
        {adam,
         {.kind = NB_OPTIM_ADAM, .weight_decay = 0.1},
         "weight_decay",
         "weight_decay 0,",
         "this one 0.1"},
        {adam,
         {.kind = NB_OPTIM_ADAM, .clip_norm = 1},
         "clip_norm",
         "clip_norm 0,",
         "this one 1 "},
        {adam,
         {.kind = NB_OPTIM_ADAM, .eps = 1e-6},
         "eps",
         "eps 1e-08",
         "this one 9.99999"},
        {sgd,
         {.kind = NB_OPTIM_SGD, .momentum = 0.1},
         "momentum",
         "momentum 0.9",
         "this one 0.1"},
        {sgd,
         {.kind = NB_OPTIM_SGD, .momentum = 0.9, .nesterov = true},
         "nesterov",
         "nesterov 0,",
         "this one 1 "},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        nb_graph *g = nb_graph_new();
        nb_node *w = nb_param(g, "w", NB_F64, 1, SHAPE(3));
        nb_tensor_fill(nb_node_value(w), 1);
        nb_optimizer *o = nb_optimizer_new(g, &cases[c].saved, 0, NULL);
        CHECK(o && nb_checkpoint_save(g, o, 1, path) == NB_OK, "%s",
              nb_graph_error(g));
        nb_optimizer_free(o);
        /* The same configuration loads. */
        o = nb_optimizer_new(g, &cases[c].saved, 0, NULL);
        CHECK(nb_checkpoint_load(g, o, NULL, path) == NB_OK, "case %zu: %s", c,
              nb_graph_error(g));
        nb_optimizer_free(o);
        nb_tensor_fill(nb_node_value(w), 5);
        o = nb_optimizer_new(g, &cases[c].loaded, 0, NULL);
        CHECK(o != NULL, "%s", nb_graph_error(g));
        CHECK(nb_checkpoint_load(g, o, NULL, path) == NB_ERR_ARG, "case %zu",
              c);
        CHECK_ERROR(g, path, cases[c].field, cases[c].was, cases[c].now);
        CHECK(nb_tensor_get(nb_node_value(w), 0) == 5, "w unchanged");
        nb_optimizer_free(o);
        nb_graph_free(g);
    }
}

int main(void)
{
    clean_dir(DIR_);
    mkdir(DIR_, 0755);
    test_roundtrip();
    test_st_api();
    test_python();
    test_hostile();
    test_conversions();
    test_fuzz();
    test_atomic();
    test_checkpoint();
    test_checkpoint_config();
    test_narrowing();
    test_stale_temps();
    test_out_of_memory();
    if (tu_failed == 0) {
        clean_dir(DIR_);
        rmdir(DIR_);
    }
    return tu_finish("io");
}
