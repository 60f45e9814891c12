/* libFuzzer harness: nb_checkpoint_load on arbitrary bytes into a graph and
 * an Adam optimiser. A failed load returns < 0 with a message naming the
 * file, and leaves the parameters, the optimiser's state tensors, step
 * count and learning rate, the RNG and the caller's epoch as they were. */
#include "fuzz_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fuzz_model m;
    if (!m.g)
        m = fuzz_model_new();
    const char *path = fuzz_path(".ckpt");
    fuzz_write(path, data, size);
    struct fuzz_snapshot before;
    fuzz_snapshot_take(&m, &before);
    int64_t epoch = -77;
    int rc = nb_checkpoint_load(m.g, m.opt, &epoch, path);
    if (rc != NB_OK) {
        fuzz_check_failure(m.g, rc, path);
        fuzz_snapshot_check(&m, &before);
        FUZZ_CHECK(epoch == -77, "a failed load wrote the epoch");
        nb_graph_clear_error(m.g);
    } else {
        FUZZ_CHECK(epoch >= 0, "loaded a negative epoch %lld", (long long)epoch);
    }
    fuzz_snapshot_free(&before);
    unlink(path);
    return 0;
}
