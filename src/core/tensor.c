/* Tensor shapes, storage and element access. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

size_t nb_dtype_size(nb_dtype dtype)
{
    return dtype == NB_F64 ? 8 : 4;
}

const char *nb_dtype_name(nb_dtype dtype)
{
    return dtype == NB_F64 ? "f64" : "f32";
}

bool nb_shape_valid(int rank, const int64_t *shape)
{
    if (rank < 0 || rank > NB_MAX_RANK || (rank > 0 && !shape))
        return false;
    /* Every extent, and the product of the non-zero ones, stays below 2^40
     * elements, so no size or stride computed from a shape can overflow
     * int64 (even an empty tensor's extents multiply safely). */
    const int64_t limit = INT64_C(1) << 40;
    int64_t product = 1;
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0 || shape[i] > limit)
            return false;
        if (shape[i] > 0) {
            if (product > limit / shape[i])
                return false;
            product *= shape[i];
        }
    }
    return true;
}

int64_t nb_shape_size(int rank, const int64_t *shape)
{
    int64_t size = 1;
    for (int i = 0; i < rank; i++)
        size *= shape[i];
    return size;
}

/* The shape row of every rank-0 tensor: nothing writes through it. */
static int64_t zero_row[NB_MAX_RANK];

void nb_tensor_init(nb_tensor *t)
{
    memset(t, 0, sizeof *t);
    t->shape = zero_row;
}

/* The graph's shared row holding exactly this shape (rank > 0), made on
 * first use; NULL when out of memory. */
static int64_t *shared_row(nb_graph *g, int rank, const int64_t *shape)
{
    uint64_t h = (uint64_t)rank;
    for (int i = 0; i < rank; i++)
        h = (h ^ (uint64_t)shape[i]) * UINT64_C(0x100000001b3);
    int64_t **slot = &g->shape_rows[(h ^ (h >> 29)) % 16];
    int64_t *row = *slot;
    if (row && row[NB_MAX_RANK] == rank) {
        /* A row holds zeros past its rank (made so below), so the rank
         * and the extents within it decide. */
        int i = 0;
        while (i < rank && row[i] == shape[i])
            i++;
        if (i == rank)
            return row;
    }
    /* One extra entry holds the rank. A collision replaces the slot: the
     * rows that shared the old one keep it, and stay read-only. */
    row = nb_arena_alloc_aligned(g, (NB_MAX_RANK + 1) * sizeof(int64_t), 8);
    if (!row)
        return NULL;
    for (int i = 0; i < NB_MAX_RANK; i++)
        row[i] = i < rank ? shape[i] : 0;
    row[NB_MAX_RANK] = rank;
    *slot = row;
    return row;
}

int nb_tensor_set_shape(nb_tensor *t, nb_graph *g, nb_dtype dtype, int rank,
                        const int64_t *shape)
{
    if (!t->shape)
        t->shape = zero_row;
    bool same = t->rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = t->shape[i] == shape[i];
    if (same && (rank == 0 || t->shape != zero_row)) {
        /* Already this shape (every step sets it again): nothing moves. */
        t->dtype = (uint8_t)dtype;
        t->size = nb_shape_size(rank, shape);
        return NB_OK;
    }
    if (t->shape_shared && !same) {
        /* A shared row is read-only: this tensor takes one of its own. */
        size_t bytes = NB_MAX_RANK * sizeof(int64_t);
        int64_t *row = g ? nb_arena_alloc_aligned(g, bytes, 8) : nb_alloc(bytes);
        if (!row)
            return NB_ERR_NOMEM;
        memset(row, 0, bytes);
        t->shape_heap = !g;
        t->shape = row;
        t->shape_shared = false;
    } else if (rank > 0 && t->shape == zero_row) {
        int64_t *row;
        if (g) {
            row = shared_row(g, rank, shape);
        } else {
            row = nb_alloc(NB_MAX_RANK * sizeof(int64_t));
            t->shape_heap = row != NULL;
        }
        if (!row)
            return NB_ERR_NOMEM;
        t->shape = row;
        t->shape_shared = g != NULL;
    }
    t->dtype = (uint8_t)dtype;
    t->rank = (uint8_t)rank;
    if (!t->shape_shared && t->shape != zero_row) {
        for (int i = 0; i < NB_MAX_RANK; i++)
            t->shape[i] = i < rank ? shape[i] : 0;
    }
    t->size = nb_shape_size(rank, shape);
    return NB_OK;
}

/* Tiny buffers are aligned to their own size rounded up to a power of two
 * (at most 64): a vector load of the whole buffer stays aligned, and an f32
 * scalar takes 4 bytes of the arena, not 64 (nor 8: a million-node scalar
 * chain holds two per node). */
static size_t tiny_align(size_t bytes)
{
    size_t a = 4;
    while (a < bytes && a < NB_ALIGN)
        a *= 2;
    return a;
}

int nb_tensor_reserve(nb_tensor *t, nb_graph *g)
{
    size_t need = nb_tensor_bytes(t);
    if (need <= nb_tensor_capacity(t) && t->data)
        return NB_OK;
    void *fresh;
    bool heap;
    size_t capacity;
    if (g && need <= NB_ALIGN && !t->data) {
        capacity = tiny_align(need);
        fresh = nb_arena_alloc_aligned(g, capacity, capacity);
        heap = false;
    } else {
        if (need > (size_t)UINT32_MAX * NB_ALIGN)
            return NB_ERR_NOMEM; /* beyond what the header can record */
        capacity = (need + NB_ALIGN - 1) & ~(size_t)(NB_ALIGN - 1);
        if (capacity == 0)
            capacity = NB_ALIGN;
        fresh = nb_alloc(capacity);
        heap = true;
    }
    if (!fresh)
        return NB_ERR_NOMEM;
    nb_tensor_release(t);
    t->data = fresh;
    t->heap_owned = heap;
    t->capacity = (uint32_t)(heap ? capacity / NB_ALIGN : capacity);
    return NB_OK;
}

void nb_tensor_release(nb_tensor *t)
{
    if (t->heap_owned)
        nb_free(t->data);
    t->data = NULL;
    t->capacity = 0;
    t->heap_owned = false;
}

/* Releases the data and a heap shape row (free-standing tensors). */
static void tensor_release_all(nb_tensor *t)
{
    nb_tensor_release(t);
    if (t->shape_heap)
        nb_free(t->shape);
    t->shape = zero_row;
    t->shape_heap = false;
    t->shape_shared = false;
}

bool nb_same_shape(const nb_tensor *a, const nb_tensor *b)
{
    if (a->rank != b->rank)
        return false;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

nb_tensor *nb_tensor_new(nb_dtype dtype, int rank, const int64_t *shape)
{
    if ((dtype != NB_F32 && dtype != NB_F64) || !nb_shape_valid(rank, shape))
        return NULL;
    nb_tensor *t = nb_alloc(sizeof *t);
    if (!t)
        return NULL;
    nb_tensor_init(t);
    if (nb_tensor_set_shape(t, NULL, dtype, rank, shape) != NB_OK ||
        nb_tensor_reserve(t, NULL) != NB_OK) {
        tensor_release_all(t);
        nb_free(t);
        return NULL;
    }
    memset(t->data, 0, nb_tensor_bytes(t));
    return t;
}

void nb_tensor_free(nb_tensor *t)
{
    if (!t)
        return;
    tensor_release_all(t);
    nb_free(t);
}

/* Every accessor answers a NULL tensor (say the gradient nb_node_grad
 * documents as NULL) with an empty value rather than a crash. */
nb_dtype nb_tensor_dtype(const nb_tensor *t) { return t ? (nb_dtype)t->dtype : NB_F32; }
int nb_tensor_rank(const nb_tensor *t) { return t ? t->rank : 0; }
const int64_t *nb_tensor_shape(const nb_tensor *t) { return t ? t->shape : NULL; }
int64_t nb_tensor_size(const nb_tensor *t) { return t ? t->size : 0; }
void *nb_tensor_data(nb_tensor *t) { return t ? t->data : NULL; }
const void *nb_tensor_cdata(const nb_tensor *t) { return t ? t->data : NULL; }

int64_t nb_tensor_dim(const nb_tensor *t, int axis)
{
    if (!t)
        return 0;
    if (axis < 0)
        axis += t->rank;
    if (axis < 0 || axis >= t->rank)
        return 0;
    return t->shape[axis];
}

float *nb_tensor_f32(nb_tensor *t)
{
    return t && t->dtype == NB_F32 ? (float *)t->data : NULL;
}

double *nb_tensor_f64(nb_tensor *t)
{
    return t && t->dtype == NB_F64 ? (double *)t->data : NULL;
}

double nb_tensor_get(const nb_tensor *t, int64_t index)
{
    if (!t || !t->data || index < 0 || index >= t->size)
        return NAN;
    return t->dtype == NB_F64 ? ((const double *)t->data)[index]
                              : (double)((const float *)t->data)[index];
}

void nb_tensor_set(nb_tensor *t, int64_t index, double value)
{
    if (!t || !t->data || index < 0 || index >= t->size)
        return;
    if (t->dtype == NB_F64)
        ((double *)t->data)[index] = value;
    else
        ((float *)t->data)[index] = (float)value;
}

void nb_tensor_fill(nb_tensor *t, double value)
{
    for (int64_t i = 0; t && t->data && i < t->size; i++)
        nb_tensor_set(t, i, value);
}

int nb_tensor_copy_from_f64(nb_tensor *t, const double *src, int64_t count)
{
    if (!t || !t->data || count != t->size || (count > 0 && !src))
        return NB_ERR_ARG;
    for (int64_t i = 0; i < count; i++)
        nb_tensor_set(t, i, src[i]);
    return NB_OK;
}

char *nb_shape_str(int rank, const int64_t *shape, char *buf, size_t buflen)
{
    if (!buf || buflen == 0)
        return buf;
    /* A rank outside 0..NB_MAX_RANK (or a missing shape) is printed, not
     * followed: the caller's array holds at most NB_MAX_RANK extents. */
    if (rank < 0 || rank > NB_MAX_RANK || (rank > 0 && !shape)) {
        snprintf(buf, buflen, "[bad rank %d]", rank);
        return buf;
    }
    size_t used = (size_t)snprintf(buf, buflen, "[");
    for (int i = 0; i < rank && used < buflen; i++)
        used += (size_t)snprintf(buf + used, buflen - used, i ? ",%lld" : "%lld",
                                 (long long)shape[i]);
    if (used < buflen)
        snprintf(buf + used, buflen - used, "]");
    return buf;
}
