/** @file
 * The one header a user includes: nabla, reverse-mode automatic
 * differentiation on a graph of tensors. */
#ifndef NABLA_H
#define NABLA_H

#include "tensor.h"
#include "graph.h"
#include "ops.h"
#include "op.h"
#include "gradcheck.h"
#include "trace.h"
#include "dot.h"
#include "nn.h"
#include "optim.h"
#include "data.h"
#include "io.h"
#include "train.h"
#include "parallel.h"

/** Major version number. */
#define NB_VERSION_MAJOR 0
/** Minor version number. */
#define NB_VERSION_MINOR 1
/** Patch version number. */
#define NB_VERSION_PATCH 0

#endif
