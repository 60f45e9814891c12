/* libFuzzer harness: nb_load_params on arbitrary bytes. A load either
 * succeeds or returns < 0 with a message naming the file and every
 * parameter exactly as it was. */
#include "fuzz_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_model m;
    if (!m.g)
        m = fuzz_model_new();
    const char *path = fuzz_path(".safetensors");
    fuzz_write(path, data, size);
    struct fuzz_snapshot before;
    fuzz_snapshot_take(&m, &before);
    int rc = nb_load_params(m.g, path, 0, NULL);
    if (rc != NB_OK) {
        fuzz_check_failure(m.g, rc, path);
        fuzz_snapshot_check(&m, &before);
        nb_graph_clear_error(m.g);
    }
    fuzz_snapshot_free(&before);
    unlink(path);
    return 0;
}
