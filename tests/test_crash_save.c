/* Crash safety of checkpoint saves: a child process saves checkpoints in a
 * loop, each one a new version (every parameter, every optimiser state
 * tensor, the step count and the epoch all derived from the version
 * number), and is killed with SIGKILL at a random moment. After each kill
 * the checkpoint must load and be one complete version: the epoch, the
 * step count and every value agree. Temporary files the killed saves left
 * behind are counted; each kill may leave at most one. */
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_files.h"
#include "test_util.h"

#define KILLS 50

static char dir[256], path[400];

struct model {
    nb_graph *g;
    nb_optimizer *opt;
    nb_node *params[3];
};

static struct model model_new(void)
{
    struct model m;
    m.g = nb_graph_new();
    m.params[0] = nb_param(m.g, "big.W", NB_F32, 2, SHAPE(256, 256));
    m.params[1] = nb_param(m.g, "big.b", NB_F32, 1, SHAPE(256));
    m.params[2] = nb_param(m.g, "scale", NB_F64, 0, NULL);
    m.opt = nb_optimizer_new(m.g, &(nb_optim_config){.kind = NB_OPTIM_ADAM}, 0,
                             NULL);
    return m;
}

static double value_of(int64_t version, int64_t i)
{
    return (double)version + (double)(i % 7) * 0.125;
}

/* Writes version v into every tensor the checkpoint holds. */
static void set_version(struct model *m, int64_t v)
{
    for (int p = 0; p < 3; p++) {
        nb_tensor *t = nb_node_value(m->params[p]);
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            nb_tensor_set(t, i, value_of(v, i));
    }
    for (int s = 0; s < nb_optimizer_state_count(m->opt); s++) {
        nb_tensor *t = nb_optimizer_state(m->opt, s, NULL);
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            nb_tensor_set(t, i, value_of(v, i + s));
    }
    nb_optimizer_set_steps(m->opt, v);
}

/* The version a loaded model holds, or -1 if its pieces disagree. */
static int64_t version_of(struct model *m, int64_t epoch)
{
    if (nb_optimizer_steps(m->opt) != epoch)
        return -1;
    for (int p = 0; p < 3; p++) {
        nb_tensor *t = nb_node_value(m->params[p]);
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            if (nb_tensor_get(t, i) != value_of(epoch, i))
                return -1;
    }
    for (int s = 0; s < nb_optimizer_state_count(m->opt); s++) {
        nb_tensor *t = nb_optimizer_state(m->opt, s, NULL);
        for (int64_t i = 0; i < nb_tensor_size(t); i++)
            if (nb_tensor_get(t, i) != value_of(epoch, i + s))
                return -1;
    }
    return epoch;
}

/* Saves versions from `first` on for ever; tells the parent through `ready`
 * once the first one is on disk. */
static void child(int64_t first, int ready)
{
    struct model m = model_new();
    for (int64_t v = first;; v++) {
        set_version(&m, v);
        if (nb_checkpoint_save(m.g, m.opt, v, path) != NB_OK)
            _exit(3);
        if (v == first) {
            char c = 1;
            if (write(ready, &c, 1) != 1)
                _exit(4);
            close(ready);
        }
    }
}

static bool is_temp(const char *name)
{
    return strstr(name, ".tmp") != NULL;
}

static int temp_files(void)
{
    return tf_count_files(dir, is_temp);
}

int main(void)
{
    if (tf_scratch_dir(dir, sizeof dir, "crash") != 0)
        return 1;
    snprintf(path, sizeof path, "%s/run.ckpt", dir);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());

    struct model loaded = model_new();
    int64_t last = 0, survived = 0;
    for (int k = 0; k < KILLS; k++) {
        int fds[2];
        if (pipe(fds) != 0)
            return 1;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child(last + 1, fds[1]);
        }
        close(fds[1]);
        char c;
        CHECK(read(fds[0], &c, 1) == 1, "kill %d: the child saved nothing", k);
        close(fds[0]);
        /* Somewhere within the next few saves (one takes about a
         * millisecond in memory), so kills land in every phase of one. */
        struct timespec pause = {0, (long)(rand() % 8000) * 1000};
        nanosleep(&pause, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "kill %d: the child ended by itself (status %d)", k, status);

        int64_t epoch = -1;
        int rc = nb_checkpoint_load(loaded.g, loaded.opt, &epoch, path);
        CHECK(rc == NB_OK, "kill %d: the checkpoint does not load: %s", k,
              nb_graph_error(loaded.g));
        nb_graph_clear_error(loaded.g);
        int64_t v = version_of(&loaded, epoch);
        CHECK(v >= last + 1, "kill %d: epoch %lld is not one complete version "
              "after %lld", k, (long long)epoch, (long long)last);
        if (rc == NB_OK && v > last) {
            survived++;
            last = v;
        }
        /* Each save first removes the temporary files of dead processes,
         * so only the one killed last can have left one behind. */
        CHECK(temp_files() <= 1, "kill %d: %d temporary files", k,
              temp_files());
    }
    int left = temp_files();
    printf("%d kills, %lld left a complete checkpoint (last version %lld); "
           "%d temporary files left behind\n",
           KILLS, (long long)survived, (long long)last, left);
    nb_optimizer_free(loaded.opt);
    nb_graph_free(loaded.g);
    tf_remove_dir(dir);
    return tu_finish("crash_save");
}
