/* Checkpoints: everything a single-threaded training run needs to continue
 * bit for bit, in one safetensors file.
 *
 * Tensors: every parameter of the graph under its node name (creation
 * order), then the optimiser's state tensors under the names the optimiser
 * gives them ("adam.m/<param>", "momentum/<param>", ...). Metadata, all
 * strings:
 *   format                 "nabla.checkpoint"
 *   format_version         "1"
 *   epoch                  decimal
 *   rng_state              the graph RNG's 4 words, 16 hex digits each,
 *                          separated by spaces
 *   optimizer              "sgd", "rmsprop", "adam" or "adamw" (only when
 *                          an optimiser was given, as are the keys below)
 *   optimizer.steps        decimal step count (Adam's t)
 *   optimizer.lr           the current rate, for people ("%.17g")
 *   optimizer.lr_bits      the same rate as 16 hex digits of its IEEE-754
 *                          bits, which is what is restored: exact, and
 *                          immune to the C locale's decimal point
 *   optimizer.state_count  decimal
 *   optimizer.momentum, .nesterov, .beta1, .beta2, .rho, .eps,
 *   .weight_decay, .l1, .decay_biases, .clip_norm
 *                          every hyper-parameter of nb_optimizer_config
 *                          but lr: doubles as the 16 hex digits of their
 *                          IEEE-754 bits, flags as "0" or "1"
 *
 * Loading checks the whole file against the graph and optimiser first
 * (format, every parameter and state tensor present with its shape and
 * with values that fit its dtype, the same optimiser kind and
 * hyper-parameters, the same number of tensors) and only then writes
 * parameters, state, step count, learning rate and RNG state.
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"
#include "nabla/nabla.h"

#define FORMAT "nabla.checkpoint"
#define VERSION "2"

static const char *kind_key(nb_optim_kind kind)
{
    switch (kind) {
    case NB_OPTIM_SGD:
        return "sgd";
    case NB_OPTIM_RMSPROP:
        return "rmsprop";
    case NB_OPTIM_ADAM:
        return "adam";
    case NB_OPTIM_ADAMW:
        return "adamw";
    }
    return "unknown";
}

/* The hyper-parameters a checkpoint records and a load compares (the rate
 * is restored instead: a schedule changes it). */
static const struct {
    const char *key;
    size_t offset;
    bool flag; /* a bool field; otherwise a double */
} config_fields[] = {
    {"optimizer.momentum", offsetof(nb_optim_config, momentum), false},
    {"optimizer.nesterov", offsetof(nb_optim_config, nesterov), true},
    {"optimizer.beta1", offsetof(nb_optim_config, beta1), false},
    {"optimizer.beta2", offsetof(nb_optim_config, beta2), false},
    {"optimizer.rho", offsetof(nb_optim_config, rho), false},
    {"optimizer.eps", offsetof(nb_optim_config, eps), false},
    {"optimizer.weight_decay", offsetof(nb_optim_config, weight_decay), false},
    {"optimizer.l1", offsetof(nb_optim_config, l1), false},
    {"optimizer.decay_biases", offsetof(nb_optim_config, decay_biases), true},
    {"optimizer.clip_norm", offsetof(nb_optim_config, clip_norm), false},
};
enum { N_CONFIG = sizeof config_fields / sizeof config_fields[0] };

/* Field i of c as a double (a flag as 0 or 1). */
static double config_value(const nb_optim_config *c, int i)
{
    const char *p = (const char *)c + config_fields[i].offset;
    if (config_fields[i].flag) {
        bool b;
        memcpy(&b, p, sizeof b);
        return b;
    }
    double v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The metadata text of field i: "0"/"1", or 16 hex digits of the bits. */
static void config_text(const nb_optim_config *c, int i, char *buf, size_t len)
{
    double v = config_value(c, i);
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (config_fields[i].flag)
        snprintf(buf, len, "%d", v != 0);
    else
        snprintf(buf, len, "%016" PRIx64, bits);
}

static bool parse_i64(const char *s, int64_t *out)
{
    if (!s)
        return false;
    bool neg = *s == '-';
    if (neg)
        s++;
    if (!*s)
        return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    /* -2^63 has no positive counterpart to negate. */
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return true;
}

/* One to sixteen hex digits ending at a space or the string's end. */
static const char *parse_hex64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int digits = 0;
    for (; *s && *s != ' '; s++, digits++) {
        int d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (*s >= 'a' && *s <= 'f')
            d = *s - 'a' + 10;
        else if (*s >= 'A' && *s <= 'F')
            d = *s - 'A' + 10;
        else
            return NULL;
        if (digits == 16)
            return NULL;
        v = v << 4 | (uint64_t)d;
    }
    if (digits == 0)
        return NULL;
    *out = v;
    return s;
}

static bool parse_words(const char *s, int n, uint64_t *w)
{
    if (!s)
        return false;
    for (int i = 0; i < n; i++) {
        if (i) {
            if (*s != ' ')
                return false;
            s++;
        }
        s = parse_hex64(s, &w[i]);
        if (!s)
            return false;
    }
    return *s == '\0';
}

int nb_checkpoint_save(nb_graph *g, nb_optimizer *opt, int64_t epoch,
                       const char *path)
{
    if (!g)
        return NB_ERR_ARG;
    if (!path)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "checkpoint_save: path is NULL");
    if (opt && nb_optimizer_param_count(opt) > 0 &&
        nb_node_graph(nb_optimizer_param(opt, 0)) != g)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "checkpoint_save: the optimiser belongs to "
                                  "another graph");
    nb_node **params;
    int np = io_collect_nodes(g, "checkpoint_save", 0, NULL, false, &params);
    if (np < 0)
        return np;
    int ns = opt ? nb_optimizer_state_count(opt) : 0;
    size_t total = (size_t)np + (size_t)ns + 1;
    const char **names = nb_alloc(total * sizeof *names);
    const nb_tensor **tensors = nb_alloc(total * sizeof *tensors);
    int rc = NB_OK;
    if (!names || !tensors)
        rc = nb_graph_set_error(g, NB_ERR_NOMEM,
                                "checkpoint_save: out of memory");
    for (int i = 0; rc == NB_OK && i < np; i++) {
        names[i] = nb_node_name(params[i]);
        tensors[i] = nb_node_value(params[i]);
    }
    for (int i = 0; rc == NB_OK && i < ns; i++) {
        tensors[np + i] = nb_optimizer_state(opt, i, &names[np + i]);
        if (!tensors[np + i])
            rc = nb_graph_set_error(g, NB_ERR_STATE,
                                    "checkpoint_save: optimiser state %d is "
                                    "missing",
                                    i);
    }
    if (rc == NB_OK) {
        uint64_t rng[4];
        nb_rng_get_state(g, rng);
        char epoch_s[32], rng_s[80], steps_s[32], lr_s[40], bits_s[24],
            count_s[24];
        snprintf(epoch_s, sizeof epoch_s, "%" PRId64, epoch);
        snprintf(rng_s, sizeof rng_s,
                 "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64,
                 rng[0], rng[1], rng[2], rng[3]);
        char config_s[N_CONFIG][24];
        const char *keys[9 + N_CONFIG] = {"format", "format_version", "epoch",
                                          "rng_state"};
        const char *values[9 + N_CONFIG] = {FORMAT, VERSION, epoch_s, rng_s};
        int nmeta = 4;
        if (opt) {
            double lr = nb_optimizer_lr(opt);
            uint64_t bits;
            memcpy(&bits, &lr, sizeof bits);
            snprintf(steps_s, sizeof steps_s, "%" PRId64,
                     nb_optimizer_steps(opt));
            snprintf(lr_s, sizeof lr_s, "%.17g", lr);
            snprintf(bits_s, sizeof bits_s, "%016" PRIx64, bits);
            snprintf(count_s, sizeof count_s, "%d", ns);
            const char *k[] = {"optimizer", "optimizer.steps", "optimizer.lr",
                               "optimizer.lr_bits", "optimizer.state_count"};
            const char *v[] = {kind_key(nb_optimizer_config(opt)->kind),
                               steps_s, lr_s, bits_s, count_s};
            for (int i = 0; i < 5; i++, nmeta++) {
                keys[nmeta] = k[i];
                values[nmeta] = v[i];
            }
            for (int i = 0; i < N_CONFIG; i++, nmeta++) {
                config_text(nb_optimizer_config(opt), i, config_s[i],
                            sizeof config_s[i]);
                keys[nmeta] = config_fields[i].key;
                values[nmeta] = config_s[i];
            }
        }
        nb_status st;
        rc =
            nb_st_save(path, np + ns, names, tensors, nmeta, keys, values, &st);
        if (rc)
            nb_graph_set_error(g, rc, "checkpoint_save: %s", st.message);
    }
    nb_free(names);
    nb_free(tensors);
    nb_free(params);
    return rc;
}

/* What the metadata says, parsed and checked against opt. */
typedef struct saved {
    int64_t epoch;
    uint64_t rng[4];
    int64_t steps;
    double lr;
    int64_t state_count;
} saved;

/* The saved hyper-parameters against opt's: the first that differs is an
 * error naming it and both values. */
static int compare_config(const nb_st_file *f, const char *path,
                          const nb_optimizer *opt, nb_status *status)
{
    const nb_optim_config *mine = nb_optimizer_config(opt);
    for (int i = 0; i < N_CONFIG; i++) {
        const char *key = config_fields[i].key;
        const char *text = nb_st_metadata(f, key);
        double saved_value, my_value = config_value(mine, i);
        uint64_t bits;
        if (config_fields[i].flag && text &&
            (!strcmp(text, "0") || !strcmp(text, "1")))
            saved_value = text[0] == '1';
        else if (!config_fields[i].flag && parse_words(text, 1, &bits))
            memcpy(&saved_value, &bits, sizeof saved_value);
        else
            return nb_status_set(status, NB_ERR_IO,
                                 "%s: metadata \"%s\" is missing or "
                                 "malformed",
                                 path, key);
        /* Bits, not ==, so that -0 and 0 or two NaNs are told apart as
         * the file records them. */
        if (memcmp(&saved_value, &my_value, sizeof my_value) != 0)
            return nb_status_set(status, NB_ERR_ARG,
                                 "%s: the checkpoint's optimiser has %s "
                                 "%.17g, this one %.17g (configured "
                                 "differently)",
                                 path, key + strlen("optimizer."), saved_value,
                                 my_value);
    }
    return NB_OK;
}

static int read_metadata(const nb_st_file *f, const char *path,
                         nb_optimizer *opt, saved *s, nb_status *status)
{
    const char *format = nb_st_metadata(f, "format");
    if (!format || strcmp(format, FORMAT) != 0)
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: not a nabla checkpoint (metadata \"format\" is "
            "%s%.40s%s)",
            path, format ? "'" : "", format ? format : "missing",
            format ? "'" : "");
    const char *version = nb_st_metadata(f, "format_version");
    if (!version || strcmp(version, VERSION) != 0)
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: unsupported checkpoint format version '%.20s' "
            "(this library reads " VERSION ")",
            path, version ? version : "missing");
    if (!parse_i64(nb_st_metadata(f, "epoch"), &s->epoch))
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: metadata \"epoch\" is missing or not an integer", path);
    if (!parse_words(nb_st_metadata(f, "rng_state"), 4, s->rng))
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: metadata \"rng_state\" is missing or not 4 hex "
            "words",
            path);
    if ((s->rng[0] | s->rng[1] | s->rng[2] | s->rng[3]) == 0)
        return nb_status_set(status, NB_ERR_IO,
                             "%s: metadata \"rng_state\" is all zero, which "
                             "xoshiro256** never reaches",
                             path);
    const char *kind = nb_st_metadata(f, "optimizer");
    s->state_count = 0;
    if (!kind && !opt)
        return NB_OK;
    if (kind &&
        !parse_i64(nb_st_metadata(f, "optimizer.state_count"), &s->state_count))
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: metadata \"optimizer.state_count\" is missing or "
            "not an integer",
            path);
    if (!opt)
        return NB_OK; /* the saved optimiser state is skipped */
    const char *mine = kind_key(nb_optimizer_config(opt)->kind);
    if (!kind)
        return nb_status_set(
            status, NB_ERR_ARG,
            "%s: the checkpoint holds no optimiser state, but an "
            "optimiser ('%s') was given",
            path, mine);
    if (strcmp(kind, mine) != 0)
        return nb_status_set(
            status, NB_ERR_ARG,
            "%s: the checkpoint was saved with optimiser '%.20s', "
            "this one is '%s'",
            path, kind, mine);
    uint64_t bits;
    if (!parse_i64(nb_st_metadata(f, "optimizer.steps"), &s->steps) ||
        s->steps < 0)
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: metadata \"optimizer.steps\" is missing or not a "
            "count",
            path);
    if (!parse_words(nb_st_metadata(f, "optimizer.lr_bits"), 1, &bits))
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: metadata \"optimizer.lr_bits\" is missing or not "
            "hex",
            path);
    memcpy(&s->lr, &bits, sizeof s->lr);
    if (!isfinite(s->lr) || !(s->lr >= 0))
        return nb_status_set(
            status, NB_ERR_IO,
            "%s: metadata \"optimizer.lr_bits\" is not a finite "
            "rate >= 0",
            path);
    return compare_config(f, path, opt, status);
}

int nb_checkpoint_load(nb_graph *g, nb_optimizer *opt, int64_t *epoch,
                       const char *path)
{
    if (!g)
        return NB_ERR_ARG;
    if (!path)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "checkpoint_load: path is NULL");
    if (opt && nb_optimizer_param_count(opt) > 0 &&
        nb_node_graph(nb_optimizer_param(opt, 0)) != g)
        return nb_graph_set_error(g, NB_ERR_ARG,
                                  "checkpoint_load: the optimiser belongs to "
                                  "another graph");
    nb_node **params;
    int np = io_collect_nodes(g, "checkpoint_load", 0, NULL, true, &params);
    if (np < 0)
        return np;
    int ns = opt ? nb_optimizer_state_count(opt) : 0;
    nb_status st;
    saved s = {0};
    int rc = NB_OK;
    int *index = nb_alloc(((size_t)np + (size_t)ns + 1) * sizeof *index);
    nb_tensor **state = nb_alloc(((size_t)ns + 1) * sizeof *state);
    nb_st_file *f = nb_st_open(path, &st);
    if (!f)
        rc = st.code;
    else if (!index || !state)
        rc = nb_status_set(&st, NB_ERR_NOMEM, "%s: out of memory", path);
    if (rc == NB_OK)
        rc = read_metadata(f, path, opt, &s, &st);
    for (int i = 0; rc == NB_OK && i < np; i++) {
        index[i] = io_match(f, path, nb_node_name(params[i]),
                            nb_node_value(params[i]), &st);
        if (index[i] < 0)
            rc = index[i];
    }
    if (rc == NB_OK && (int64_t)nb_st_count(f) - np != s.state_count)
        rc = nb_status_set(
            &st, NB_ERR_ARG,
            "%s: the checkpoint holds %d tensors, but the graph has "
            "%d parameters and the saved optimiser %lld state "
            "tensors (built differently?)",
            path, nb_st_count(f), np, (long long)s.state_count);
    if (rc == NB_OK && opt && s.state_count != ns)
        rc = nb_status_set(
            &st, NB_ERR_ARG,
            "%s: the checkpoint's optimiser has %lld state tensors, "
            "this one %d (configured differently?)",
            path, (long long)s.state_count, ns);
    for (int i = 0; rc == NB_OK && i < ns; i++) {
        const char *name;
        state[i] = nb_optimizer_state(opt, i, &name);
        if (!state[i]) {
            rc = nb_status_set(&st, NB_ERR_STATE,
                               "%s: optimiser state %d is missing", path, i);
            break;
        }
        index[np + i] = io_match(f, path, name, state[i], &st);
        if (index[np + i] < 0)
            rc = index[np + i];
    }
    /* Everything checked: from here on nothing can fail halfway. */
    for (int i = 0; rc == NB_OK && i < np; i++)
        rc = nb_st_read(f, index[i], nb_node_value(params[i]), &st);
    for (int i = 0; rc == NB_OK && i < ns; i++)
        rc = nb_st_read(f, index[np + i], state[i], &st);
    if (rc == NB_OK) {
        if (opt) {
            nb_optimizer_set_steps(opt, s.steps);
            nb_optimizer_set_lr(opt, s.lr);
        }
        nb_rng_set_state(g, s.rng);
        if (epoch)
            *epoch = s.epoch;
    } else {
        nb_graph_set_error(g, rc, "checkpoint_load: %s", st.message);
    }
    nb_st_close(f);
    nb_free(index);
    nb_free(state);
    nb_free(params);
    return rc;
}
