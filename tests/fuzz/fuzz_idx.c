/* libFuzzer harness: nb_idx_read. The first byte picks the form: odd, the
 * rest is written through zlib as a gzip file (so the fuzzer explores the
 * IDX parser behind a valid gzip layer); even, the rest is written raw (so
 * it also explores broken gzip streams that start with 1f 8b). Bit 1 picks
 * the dtype. A read returns a tensor whose size matches its shape, or NULL
 * with a message naming the file. */
#include <zlib.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mode;
    const char *path = fuzz_mode_and_file(data, size, ".idx", &mode, &data, &size);
    if (!path)
        return 0;
    if (mode & 1) {
        gzFile gz = gzopen(path, "wb");
        FUZZ_CHECK(gz != NULL, "gzopen %s", path);
        FUZZ_CHECK(size == 0 || gzwrite(gz, data, (unsigned)size) == (int)size,
                   "gzwrite");
        FUZZ_CHECK(gzclose(gz) == Z_OK, "gzclose");
    } else {
        fuzz_write(path, data, size);
    }
    nb_status st = {0};
    nb_dtype dtype = (mode & 2) ? NB_F64 : NB_F32;
    nb_tensor *t = nb_idx_read(path, dtype, &st);
    if (t) {
        int64_t product = 1;
        for (int i = 0; i < nb_tensor_rank(t); i++)
            product *= nb_tensor_dim(t, i);
        FUZZ_CHECK(nb_tensor_rank(t) >= 1 && nb_tensor_size(t) == product &&
                       nb_tensor_dtype(t) == dtype,
                   "tensor of rank %d, size %lld", nb_tensor_rank(t),
                   (long long)nb_tensor_size(t));
        nb_tensor_free(t);
    } else {
        FUZZ_CHECK(st.code < 0 && strstr(st.message, path) != NULL,
                   "message '%s' (code %d) does not name %s", st.message,
                   st.code, path);
    }
    unlink(path);
    return 0;
}
