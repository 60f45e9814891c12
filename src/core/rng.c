/* The graph's random number generator: xoshiro256** (Blackman and Vigna),
 * seeded through splitmix64. Normals come from Box-Muller without a cached
 * second value, so the four state words are the whole state. */
#include <math.h>

#include "core/internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void nb_graph_seed(nb_graph *g, uint64_t seed)
{
    if (!g)
        return;
    for (int i = 0; i < 4; i++)
        g->rng[i] = splitmix64(&seed);
}

double nb_rng_uniform(nb_graph *g)
{
    if (!g)
        return NAN;
    /* 53 random bits -> [0, 1) */
    return (double)(next_u64(g->rng) >> 11) * 0x1.0p-53;
}

double nb_rng_normal(nb_graph *g)
{
    if (!g)
        return NAN;
    double u1 = 1.0 - nb_rng_uniform(g); /* (0, 1]: log stays finite */
    double u2 = nb_rng_uniform(g);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint64_t nb_rng_u64(nb_graph *g)
{
    return g ? next_u64(g->rng) : 0;
}

int64_t nb_rng_below(nb_graph *g, int64_t n)
{
    if (!g || n <= 0)
        return 0;
    /* Rejection sampling: draws that fall in the incomplete last block of
     * size 2^64 mod n would favour small results, so they are drawn again. */
    uint64_t bound = (uint64_t)n;
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = next_u64(g->rng);
        if (r >= threshold)
            return (int64_t)(r % bound);
    }
}

void nb_rng_get_state(const nb_graph *g, uint64_t state[4])
{
    for (int i = 0; state && i < 4; i++)
        state[i] = g ? g->rng[i] : 0;
}

int nb_rng_set_state(nb_graph *g, const uint64_t state[4])
{
    if (!g)
        return NB_ERR_ARG;
    if (!state)
        return nb_set_error(g, NB_ERR_ARG, "rng_set_state: state is NULL");
    /* xoshiro's all-zero state is a fixed point: every draw would be 0, and
     * nb_rng_below's rejection loop would never end. */
    if ((state[0] | state[1] | state[2] | state[3]) == 0)
        return nb_set_error(g, NB_ERR_ARG,
                            "rng_set_state: the all-zero state is not a "
                            "state of the generator");
    for (int i = 0; i < 4; i++)
        g->rng[i] = state[i];
    return NB_OK;
}
