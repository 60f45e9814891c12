/* The dtypes of the safetensors format and their conversion to nabla's f32
 * and f64.
 *
 * Each dtype's bits are read little-endian with shifts (the same code on a
 * big-endian host) and turned into a double, which holds every value of
 * every dtype of 32 bits or less exactly; then the double is rounded once
 * to the destination. Same dtype in and out copies the bits, so NaN
 * payloads survive. Narrowing F64 to f32 refuses a finite value beyond the
 * f32 range instead of turning it into an infinity; NaN and infinities in
 * the file are data and are kept.
 */
#include <math.h>
#include <string.h>

#include "io_internal.h"

/* How the bits of each dtype become a number. */
typedef enum { K_F32, K_F64, K_F16, K_BF16, K_BOOL, K_UINT, K_INT, K_F8 } kind;

static const struct {
    const char *name;
    unsigned size;
    kind kind;
} dtypes[] = {
    {"BOOL", 1, K_BOOL},  {"U8", 1, K_UINT},    {"I8", 1, K_INT},
    {"F8_E5M2", 1, K_F8}, {"F8_E4M3", 1, K_F8}, {"I16", 2, K_INT},
    {"U16", 2, K_UINT},   {"F16", 2, K_F16},    {"BF16", 2, K_BF16},
    {"I32", 4, K_INT},    {"U32", 4, K_UINT},   {"F32", 4, K_F32},
    {"I64", 8, K_INT},    {"U64", 8, K_UINT},   {"F64", 8, K_F64},
};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };

int st_dtype_find(const char *name)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return i;
    return -1;
}

const char *st_dtype_name(int dtype)
{
    return dtypes[dtype].name;
}

unsigned st_dtype_size(int dtype)
{
    return dtypes[dtype].size;
}

bool st_dtype_is_float(const char *dtype)
{
    return dtype && (strcmp(dtype, "F32") == 0 || strcmp(dtype, "F64") == 0 ||
                     strcmp(dtype, "F16") == 0 || strcmp(dtype, "BF16") == 0);
}

uint64_t st_load_le(const unsigned char *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = size; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

void st_store_le(unsigned char *p, uint64_t v, unsigned size)
{
    for (unsigned i = 0; i < size; i++, v >>= 8)
        p[i] = (unsigned char)v;
}

/* IEEE binary16 to binary32: exact, since every half is a float. */
static float half_to_float(unsigned h)
{
    unsigned sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
    float v;
    if (exp == 0)
        v = (float)frac * 0x1p-24f; /* zero and subnormals: frac 2^-24 */
    else if (exp == 31)
        v = frac ? NAN : INFINITY;
    else
        v = (float)(frac | 0x400) * (float)(1 << exp) * 0x1p-25f;
    return sign ? -v : v;
}

static double element(const unsigned char *p, int dtype)
{
    unsigned size = dtypes[dtype].size;
    uint64_t bits = st_load_le(p, size);
    switch (dtypes[dtype].kind) {
    case K_F32: {
        uint32_t b = (uint32_t)bits;
        float v;
        memcpy(&v, &b, sizeof v);
        return v;
    }
    case K_F64: {
        double v;
        memcpy(&v, &bits, sizeof v);
        return v;
    }
    case K_F16:
        return half_to_float((unsigned)bits);
    case K_BF16: {
        uint32_t b = (uint32_t)bits << 16; /* the high half of an f32 */
        float v;
        memcpy(&v, &b, sizeof v);
        return v;
    }
    case K_BOOL:
        return bits != 0;
    case K_UINT:
        return (double)bits;
    case K_INT: {
        /* Sign-extend from `size` bytes. */
        if (size < 8 && (bits >> (8 * size - 1)) & 1)
            bits |= ~UINT64_C(0) << (8 * size);
        int64_t v;
        memcpy(&v, &bits, sizeof v);
        return (double)v;
    }
    case K_F8:
        break; /* refused by nb_st_read */
    }
    return NAN;
}

int st_check_range(const nb_st_file *f, int i, nb_dtype dtype,
                   nb_status *status)
{
    const st_tensor *t = st_tensor_at(f, i);
    /* Only F64 holds finite values beyond the f32 range (U64 and I64 stop
     * near 1.8e19). */
    if (!t || dtype != NB_F32 || dtypes[t->dtype].kind != K_F64)
        return NB_OK;
    const unsigned char *src = f->data + t->begin;
    for (int64_t e = 0; e < t->count; e++) {
        double v = element(src + (size_t)e * 8, t->dtype);
        if (isfinite(v) && isinf((float)v))
            return nb_status_set(status, NB_ERR_IO,
                                 "%s: tensor '%.80s': element %lld is %g, "
                                 "beyond the range of f32",
                                 f->path, t->name, (long long)e, v);
    }
    return NB_OK;
}

int nb_st_read(const nb_st_file *f, int i, nb_tensor *dst, nb_status *status)
{
    nb_status_set(status, NB_OK, NULL);
    const st_tensor *t = st_tensor_at(f, i);
    if (!t)
        return nb_status_set(status, NB_ERR_ARG,
                             "st_read: tensor index %d is out of range", i);
    if (!dst)
        return nb_status_set(status, NB_ERR_ARG,
                             "%s: tensor '%.80s': destination is NULL", f->path,
                             t->name);
    if (nb_tensor_size(dst) != t->count)
        return nb_status_set(status, NB_ERR_ARG,
                             "%s: tensor '%.80s' has %lld elements, the "
                             "destination %lld",
                             f->path, t->name, (long long)t->count,
                             (long long)nb_tensor_size(dst));
    kind k = dtypes[t->dtype].kind;
    if (k == K_F8)
        return nb_status_set(status, NB_ERR_ARG,
                             "%s: tensor '%.80s': cannot convert dtype %s",
                             f->path, t->name, dtypes[t->dtype].name);
    nb_dtype out = nb_tensor_dtype(dst);
    int rc = st_check_range(f, i, out, status);
    if (rc)
        return rc;
    const unsigned char *src = f->data + t->begin;
    unsigned size = dtypes[t->dtype].size;
    void *data = nb_tensor_data(dst);
    /* Same dtype: copy the bits, so that NaN payloads survive too. */
    if ((out == NB_F32 && k == K_F32) || (out == NB_F64 && k == K_F64)) {
        unsigned char *d = data;
        for (int64_t e = 0; e < t->count; e++) {
            uint64_t bits = st_load_le(src + (size_t)e * size, size);
            if (size == 4) {
                uint32_t b = (uint32_t)bits;
                memcpy(d + (size_t)e * 4, &b, 4);
            } else {
                memcpy(d + (size_t)e * 8, &bits, 8);
            }
        }
        return NB_OK;
    }
    for (int64_t e = 0; e < t->count; e++) {
        double v = element(src + (size_t)e * size, t->dtype);
        if (out == NB_F32)
            ((float *)data)[e] = (float)v;
        else
            ((double *)data)[e] = v;
    }
    return NB_OK;
}
