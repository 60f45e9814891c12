/* What the layers of src/nn share: the choice of initial weights by
 * nb_init_kind, the checks every layer makes of its input and of the
 * enums it is given, and parameter names "<layer>.<suffix>". Internal to
 * src/nn (hidden like every non-NB_API symbol of the library). */
#ifndef NABLA_NN_LAYER_UTIL_H
#define NABLA_NN_LAYER_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "nabla/nn.h"

/* Longest parameter name a layer makes, with its terminating zero. */
#define NB_LAYER_NAME_CAP 512

/* Initialises weight W (and, for NB_INIT_TORCH, bias b) by `init`, with
 * the layer's fan_in and fan_out; b is otherwise left zero. `act` guides
 * NB_INIT_DEFAULT: He uniform for the ReLU family, Xavier uniform else. */
int nb_layer_init(nb_graph *g, nb_node *W, nb_node *b, double fan_in,
                   double fan_out, nb_init_kind init, nb_activation act);

/* Records "<kind> '<name>': ..." errors for a NULL or foreign x, an init
 * kind or activation outside its enum; returns NB_OK or the code. */
int nb_layer_check(nb_graph *g, nb_node *x, const char *kind,
                    const char *name, nb_init_kind init, nb_activation act);

/* Writes "<name>.<suffix>" into buf (NB_LAYER_NAME_CAP bytes); records an
 * error naming the layer kind and returns false when it does not fit. */
bool nb_layer_name(nb_graph *g, char *buf, const char *kind,
                    const char *name, const char *suffix);

/* Takes back the nodes a layer call made since the graph held `mark` nodes
 * (nb_graph_rollback), so that a call that fails halfway leaves no
 * parameter or node behind; returns NULL. */
nb_node *nb_layer_undo(nb_graph *g, int64_t mark);

/* After an op failed inside a layer: puts "<kind> '<name>': " in front of
 * the op's message, so the error names the layer. */
void nb_layer_blame(nb_graph *g, const char *kind, const char *name);

#endif
