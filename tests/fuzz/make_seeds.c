/* Writes the fuzzers' seed corpora with the library's own writers, so the
 * fuzzers start from files nabla really produces (and stay in step when
 * the formats change): OUTDIR/params, checkpoint, idx, csv and graph. IDX
 * and CSV have no writer in the library; their seeds are written here from
 * the formats' definitions. Each IDX and CSV seed starts with the mode
 * byte its harness reads first. */
#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

#include "fuzz_state.h"

static char dir[4096];

static const char *in_dir(const char *sub, const char *name)
{
    static char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_seeds: cannot create %s\n", path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    return path;
}

static void write_bytes(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        exit(1);
    }
}

/* An IDX file: magic 0 0 type rank, big-endian extents, then the data. */
static size_t idx_bytes(uint8_t *out, uint8_t type, int rank,
                        const uint32_t *dims, const uint8_t *payload,
                        size_t payload_size)
{
    size_t k = 0;
    out[k++] = 0;
    out[k++] = 0;
    out[k++] = type;
    out[k++] = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        for (int b = 3; b >= 0; b--)
            out[k++] = (uint8_t)(dims[i] >> (8 * b));
    memcpy(out + k, payload, payload_size);
    return k + payload_size;
}

static void idx_seed(const char *name, int mode, const uint8_t *idx, size_t n)
{
    uint8_t buf[1024];
    buf[0] = (uint8_t)mode;
    memcpy(buf + 1, idx, n);
    write_bytes(in_dir("idx", name), buf, n + 1);
}

static void idx_seeds(void)
{
    uint8_t payload[64], idx[512];
    for (int i = 0; i < 64; i++)
        payload[i] = (uint8_t)(i * 37);
    size_t n = idx_bytes(idx, 0x08, 3, (const uint32_t[]){2, 2, 3}, payload, 12);
    idx_seed("ubyte_raw", 0, idx, n);
    idx_seed("ubyte_gzip", 1, idx, n);
    n = idx_bytes(idx, 0x08, 1, (const uint32_t[]){5}, payload, 5);
    idx_seed("labels_raw_f64", 2, idx, n);
    /* f32 1.0 and -2.5 big-endian, then an i16 and an i32 file. */
    const uint8_t f32[] = {0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0};
    n = idx_bytes(idx, 0x0D, 2, (const uint32_t[]){1, 2}, f32, sizeof f32);
    idx_seed("f32_gzip", 1, idx, n);
    n = idx_bytes(idx, 0x0B, 1, (const uint32_t[]){4}, payload, 8);
    idx_seed("i16_raw", 0, idx, n);
    n = idx_bytes(idx, 0x0C, 1, (const uint32_t[]){2}, payload, 8);
    idx_seed("i32_gzip_f64", 3, idx, n);
    /* An already gzipped file written raw: the harness's even modes then
     * feed the gzip layer itself to the parser. */
    const char *gz_path = in_dir("idx", "tmp.gz");
    gzFile gz = gzopen(gz_path, "wb");
    n = idx_bytes(idx, 0x08, 2, (const uint32_t[]){3, 4}, payload, 12);
    gzwrite(gz, idx, (unsigned)n);
    gzclose(gz);
    FILE *f = fopen(gz_path, "rb");
    uint8_t buf[1024];
    buf[0] = 0;
    size_t got = fread(buf + 1, 1, sizeof buf - 1, f);
    fclose(f);
    remove(gz_path);
    write_bytes(in_dir("idx", "gzip_stream_raw"), buf, got + 1);
}

static void csv_seed(const char *name, int mode, const char *text)
{
    char buf[1024];
    buf[0] = (char)mode;
    size_t n = strlen(text);
    memcpy(buf + 1, text, n);
    write_bytes(in_dir("csv", name), buf, n + 1);
}

static void csv_seeds(void)
{
    /* mode bits: 0-1 delimiter (, ; tab space), 2 header, 3-4 label column
     * + 1, 5 label by name, 6 f64. */
    csv_seed("plain", 0, "1,2,3\n4.5,-6e2,7\n");
    csv_seed("header_label_name", 4 | 32, "a,label,b\n1,0,2\n3,1,4\n");
    csv_seed("semicolon_label1", 1 | (2 << 3), "1;0;2\r\n3;1;4\r\n");
    csv_seed("tab_f64", 2 | 64, "0.5\t1\n\n2\t3\n");
    csv_seed("space_header", 3 | 4, "x y\n 1 2 \n3 4");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUTDIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "make_seeds: cannot create %s\n", dir);
        return 1;
    }
    struct fuzz_model m = fuzz_model_new();
    if (nb_save_params(m.g, in_dir("params", "all.safetensors"), 0, NULL) != NB_OK ||
        nb_save_params(m.g, in_dir("params", "one.safetensors"), 1,
                       (nb_node *const[]){nb_graph_find(m.g, "layer.b")}) != NB_OK ||
        nb_checkpoint_save(m.g, m.opt, 3, in_dir("checkpoint", "adam.ckpt")) != NB_OK ||
        nb_checkpoint_save(m.g, NULL, 0, in_dir("checkpoint", "no_opt.ckpt")) != NB_OK) {
        fprintf(stderr, "make_seeds: %s\n", nb_graph_error(m.g));
        return 1;
    }
    nb_optimizer_free(m.opt);
    nb_graph_free(m.g);
    idx_seeds();
    csv_seeds();
    /* Graph programs: a few byte strings that build, run and step. */
    const uint8_t programs[][24] = {
        {0, 0, 0, 1, 2, 1, 1, 1, 1, 3, 2, 0, 6, 1, 0, 0, 0, 5, 0, 18},
        {1, 1, 0, 2, 3, 2, 0, 1, 4, 1, 2, 0, 1, 2, 9, 3, 0, 0, 1, 1},
        {0, 1, 0, 1, 2, 0, 2, 1, 0, 1, 1, 4, 0, 3, 1, 1, 0, 1, 3, 0},
    };
    for (size_t i = 0; i < sizeof programs / sizeof *programs; i++) {
        char name[32];
        snprintf(name, sizeof name, "program%zu", i);
        write_bytes(in_dir("graph", name), programs[i], sizeof programs[i]);
    }
    return 0;
}
