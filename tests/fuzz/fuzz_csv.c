/* libFuzzer harness: nb_csv_read. The first byte picks the options
 * (header, label column by index or by name or none, delimiter, dtype),
 * the rest is the file. A read returns features whose row count matches
 * the labels', or NULL with a message naming the file and *labels NULL. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int mode;
    const char *path = fuzz_mode_and_file(data, size, ".csv", &mode, &data, &size);
    if (!path)
        return 0;
    fuzz_write(path, data, size);
    static const char delimiters[] = {',', ';', '\t', ' '};
    nb_csv_options o = {
        .delimiter = delimiters[mode & 3],
        .header = (mode >> 2) & 1,
        .label_column = ((mode >> 3) & 3) - 1, /* -1 .. 2 */
        .label_name = ((mode >> 5) & 1) ? "label" : NULL,
        .dtype = ((mode >> 6) & 1) ? NB_F64 : NB_F32,
    };
    nb_tensor *labels = (nb_tensor *)&o; /* must be overwritten */
    nb_status st = {0};
    nb_tensor *x = nb_csv_read(path, &o, &labels, &st);
    if (x) {
        FUZZ_CHECK(nb_tensor_rank(x) == 2 && nb_tensor_dtype(x) == o.dtype,
                   "features of rank %d", nb_tensor_rank(x));
        if (labels)
            FUZZ_CHECK(nb_tensor_size(labels) == nb_tensor_dim(x, 0),
                       "%lld labels for %lld rows",
                       (long long)nb_tensor_size(labels),
                       (long long)nb_tensor_dim(x, 0));
        nb_tensor_free(x);
        nb_tensor_free(labels);
    } else {
        FUZZ_CHECK(labels == NULL, "failed read left *labels set");
        FUZZ_CHECK(st.code < 0 && strstr(st.message, path) != NULL,
                   "message '%s' (code %d) does not name %s", st.message,
                   st.code, path);
    }
    unlink(path);
    return 0;
}
