/* Saving and loading parameter values as safetensors files, matched by
 * node name.
 *
 * Saving writes the nodes in the order given, or every parameter (trainable
 * or frozen) and state tensor in creation order, so files from the same
 * model are laid out the same way. Loading is two passes: the first checks every node against
 * the file (present, same shape, a floating dtype), the second copies; a
 * load that fails therefore leaves every node as it was.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"
#include "nabla/nabla.h"

/* What "every parameter" saves and loads: the parameters, and the state
 * tensors beside them (running statistics), which belong to the model as
 * much as its weights do. */
static bool io_saved_kind(const nb_node *node)
{
    nb_node_kind k = nb_node_get_kind(node);
    return k == NB_NODE_PARAM || k == NB_NODE_STATE;
}

int io_collect_nodes(nb_graph *g, const char *what, int n,
                     nb_node *const *nodes, bool for_load, nb_node ***out)
{
    *out = NULL;
    if (n < 0 || (n > 0 && !nodes))
        return nb_graph_set_error(g, NB_ERR_ARG, "%s: n is %d with nodes %s",
                                  what, n, nodes ? "given" : "NULL");
    int64_t total = nb_graph_node_count(g);
    int count = n;
    if (n == 0) {
        for (int64_t id = 0; id < total; id++)
            count += io_saved_kind(nb_graph_node(g, id));
    }
    nb_node **list = nb_alloc(((size_t)count + 1) * sizeof *list);
    if (!list)
        return nb_graph_set_error(g, NB_ERR_NOMEM, "%s: out of memory", what);
    if (n == 0) {
        int k = 0;
        for (int64_t id = 0; id < total; id++) {
            nb_node *node = nb_graph_node(g, id);
            if (io_saved_kind(node))
                list[k++] = node;
        }
    } else {
        for (int i = 0; i < n; i++) {
            nb_node *node = nodes[i];
            const char *why = NULL;
            if (!node)
                why = "is NULL";
            else if (nb_node_graph(node) != g)
                why = "belongs to another graph";
            else if (for_load && !io_saved_kind(node) &&
                     nb_node_get_kind(node) != NB_NODE_CONSTANT)
                why = "is not a parameter or constant, nor a state tensor";
            else if (!nb_tensor_cdata(nb_node_value(node)) &&
                     nb_tensor_size(nb_node_value(node)) > 0)
                why = "has no value yet";
            if (why) {
                nb_free(list);
                return nb_graph_set_error(
                    g, NB_ERR_ARG, "%s: node %d (%s) %s", what, i,
                    node ? nb_node_name(node) : "NULL", why);
            }
            list[i] = node;
        }
    }
    *out = list;
    return count;
}

int io_match(const nb_st_file *f, const char *path, const char *name,
             const nb_tensor *t, nb_status *status)
{
    int i = nb_st_find(f, name);
    if (i < 0)
        return nb_status_set(status, NB_ERR_ARG,
                             "%s: no tensor '%.80s' in the file", path, name);
    const char *dt = nb_st_dtype(f, i);
    if (!st_dtype_is_float(dt))
        return nb_status_set(status, NB_ERR_ARG,
                             "%s: tensor '%.80s' has dtype %s, which does not "
                             "convert to %s",
                             path, name, dt, nb_dtype_name(nb_tensor_dtype(t)));
    int rank = nb_st_rank(f, i);
    const int64_t *shape = nb_st_shape(f, i);
    bool same = rank == nb_tensor_rank(t);
    for (int d = 0; same && d < rank; d++)
        same = shape[d] == nb_tensor_shape(t)[d];
    if (!same) {
        char a[96], b[96];
        return nb_status_set(
            status, NB_ERR_ARG,
            "%s: tensor '%.80s' has shape %s in the file, but %s in "
            "the graph",
            path, name, io_shape_str(rank, shape, a, sizeof a),
            io_shape_str(nb_tensor_rank(t), nb_tensor_shape(t), b, sizeof b));
    }
    int rc = st_check_range(f, i, nb_tensor_dtype(t), status);
    return rc ? rc : i;
}

int nb_save_params(nb_graph *g, const char *path, int n, nb_node *const *nodes)
{
    if (!g)
        return NB_ERR_ARG;
    if (!path)
        return nb_graph_set_error(g, NB_ERR_ARG, "save_params: path is NULL");
    nb_node **list;
    int count = io_collect_nodes(g, "save_params", n, nodes, false, &list);
    if (count < 0)
        return count;
    const char **names = nb_alloc(((size_t)count + 1) * sizeof *names);
    const nb_tensor **tensors = nb_alloc(((size_t)count + 1) * sizeof *tensors);
    int rc;
    if (!names || !tensors) {
        rc = nb_graph_set_error(g, NB_ERR_NOMEM, "save_params: out of memory");
    } else {
        for (int i = 0; i < count; i++) {
            names[i] = nb_node_name(list[i]);
            tensors[i] = nb_node_value(list[i]);
        }
        nb_status st;
        rc = nb_st_save(path, count, names, tensors, 0, NULL, NULL, &st);
        if (rc)
            nb_graph_set_error(g, rc, "save_params: %s", st.message);
    }
    nb_free(names);
    nb_free(tensors);
    nb_free(list);
    return rc;
}

int nb_load_params(nb_graph *g, const char *path, int n, nb_node *const *nodes)
{
    if (!g)
        return NB_ERR_ARG;
    if (!path)
        return nb_graph_set_error(g, NB_ERR_ARG, "load_params: path is NULL");
    nb_node **list;
    int count = io_collect_nodes(g, "load_params", n, nodes, true, &list);
    if (count < 0)
        return count;
    nb_status st;
    int rc = NB_OK;
    nb_st_file *f = nb_st_open(path, &st);
    int *index = nb_alloc(((size_t)count + 1) * sizeof *index);
    if (!f)
        rc = st.code;
    else if (!index)
        rc = nb_status_set(&st, NB_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; rc == NB_OK && i < count; i++) {
        index[i] = io_match(f, path, nb_node_name(list[i]),
                            nb_node_value(list[i]), &st);
        if (index[i] < 0)
            rc = index[i];
    }
    for (int i = 0; rc == NB_OK && i < count; i++)
        rc = nb_st_read(f, index[i], nb_node_value(list[i]), &st);
    if (rc)
        nb_graph_set_error(g, rc, "load_params: %s", st.message);
    nb_free(index);
    nb_st_close(f);
    nb_free(list);
    return rc;
}
