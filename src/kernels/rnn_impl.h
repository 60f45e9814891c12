/* Body of the fused recurrent kernels (rnn.h), included once per REAL
 * (float, double) by rnn.c.
 *
 * Scratch, per (sample, step) row (in the order of rnn_row), in REAL
 * elements:
 *   LSTM: the activated gates i, f, g, o (4H), then the cell states c (H),
 *         then tanh(c) (H), each as one block of N T rows;
 *   GRU:  the activated r, z, n (3H), then W_hn h + b_hn (H);
 *   Elman: nothing (the output h is all backward needs).
 * Workspace: the GEMM's packing space first (it wants 64-byte alignment),
 * then forward's transposed w_hh (and w_ih below it, when x_t joins each
 * step's product), the bias, the inputs of one step's product (and GRU's
 * recurrent product of one step), or backward's pre-activation messages,
 * the inputs [x_t | h_{t-1}] of every step (first dx, when its rows are
 * by step), the weight gradients of the fused product, the bias
 * gradient, the [N, H] messages carried from step to step, a copy of
 * w_hh and one step's recurrent messages.
 *
 * The per-step products read their operands from copies whose rows are
 * contiguous and one cache line longer than a power of two. Read in place
 * (h_{t-1} every T H elements of y, one step's messages every T G H, w_hh
 * every H and its transpose every G H), the rows of a direct GEMM tile sit
 * a multiple of 4 KiB apart and fall into the same L1 (and L2) sets: the
 * tile's broadcasts and its sliver of B evict each other at every k. */

typedef struct {
    int kernel; /* RNN_FORWARD_STEP or RNN_BACKWARD_STEP */
    const nb_rnn_dims *d;
    int64_t t;
    const REAL *h0, *c0, *dy;
    REAL *y, *gates, *aux, *rec; /* aux: C (LSTM) or HN (GRU) */
    REAL *dax, *dah, *dhn, *dc;
    REAL *step; /* forward: h_t by rows of H; backward: da_h of step t */
    int64_t ld_step;
} SUFFIX(rnn_call);

static int64_t SUFFIX(rnn_round)(int64_t elems)
{
    int64_t per = 64 / (int64_t)sizeof(REAL);
    return (elems + per - 1) / per * per;
}

/* A leading dimension for rows of `elems`: one cache line more, so that
 * rows a power of two long do not alias in the caches. */
static int64_t SUFFIX(rnn_ld)(int64_t elems)
{
    return elems + 64 / (int64_t)sizeof(REAL);
}

static size_t SUFFIX(rnn_gemm_ws)(const nb_rnn_dims *d)
{
    int64_t gh = d->cell * d->h, rows = d->n * d->t;
    size_t s[8] = {
        SUFFIX(nb_gemm_workspace)(rows, gh, d->e),
        SUFFIX(nb_gemm_workspace)(d->n, gh, d->h),
        SUFFIX(nb_gemm_workspace)(d->n, d->h, gh),
        SUFFIX(nb_gemm_workspace)(rows, d->e, gh),
        SUFFIX(nb_gemm_workspace)(gh, d->e, rows),
        SUFFIX(nb_gemm_workspace)(gh, d->h, rows),
        SUFFIX(nb_gemm_workspace)(gh, d->e + d->h, rows),
        SUFFIX(nb_gemm_workspace)(d->n, gh, d->h + d->e),
    };
    size_t m = 0;
    for (int i = 0; i < 8; i++)
        m = s[i] > m ? s[i] : m;
    return (m + 63) / 64 * 64;
}

/* Whether each forward step multiplies [h_{t-1} | x_t] (one GEMM of N
 * rows a step, no projection of all steps up front): LSTM and Elman (GRU
 * keeps W_hn h apart) with enough rows a step; with one or a few rows the
 * per-step product reads all of W_ih for as many rows, and the projection
 * of all steps as one GEMM is cheaper. */
static bool SUFFIX(rnn_fuse_x)(const nb_rnn_dims *d)
{
    return d->cell != NB_SEQ_GRU && d->n >= RNN_FUSE_ROWS;
}

/* The row of (sample n, step t) in the scratch and in backward's
 * messages: by steps for the fused LSTM, so that a step's gates, cell
 * states and messages are each one block that the caches fetch as a
 * stream, not N rows a page or more apart; by samples otherwise, the
 * order of x and of the projection of all steps (Elman's gates are its
 * output y, [N, T, H]). */
static bool SUFFIX(rnn_by_step)(const nb_rnn_dims *d)
{
    return d->cell == NB_SEQ_LSTM && SUFFIX(rnn_fuse_x)(d);
}

static int64_t SUFFIX(rnn_row)(const nb_rnn_dims *d, int64_t n, int64_t t)
{
    return SUFFIX(rnn_by_step)(d) ? t * d->n + n : n * d->t + t;
}

size_t SUFFIX(nb_rnn_workspace)(const nb_rnn_dims *d)
{
    int64_t gh = d->cell * d->h, rows = d->n * d->t;
    int64_t fwd = SUFFIX(rnn_round)((d->h + d->e) * SUFFIX(rnn_ld)(gh)) +
                  2 * SUFFIX(rnn_round)(gh) +
                  SUFFIX(rnn_round)(d->n * SUFFIX(rnn_ld)(d->h + d->e)) +
                  (d->cell == NB_SEQ_GRU ? SUFFIX(rnn_round)(d->n * gh) : 0);
    int64_t back = SUFFIX(rnn_round)(rows * gh) * (d->cell == NB_SEQ_GRU ? 2 : 1) +
                   SUFFIX(rnn_round)(rows * (d->e + d->h)) +
                   SUFFIX(rnn_round)(gh * (d->e + d->h)) +
                   SUFFIX(rnn_round)(gh) +
                   2 * SUFFIX(rnn_round)(d->n * d->h) +
                   SUFFIX(rnn_round)(gh * SUFFIX(rnn_ld)(d->h)) +
                   SUFFIX(rnn_round)(d->n * SUFFIX(rnn_ld)(gh));
    int64_t arrays = fwd > back ? fwd : back;
    return SUFFIX(rnn_gemm_ws)(d) + (size_t)arrays * sizeof(REAL);
}

/* ---- one step's gate loops, rows [lo, hi) of the batch ---- */

static void SUFFIX(rnn_forward_rows)(const SUFFIX(rnn_call) *c, int64_t lo,
                                     int64_t hi)
{
    const nb_rnn_dims *d = c->d;
    int64_t H = d->h, T = d->t, t = c->t, TY = T + (d->final_cell ? 1 : 0);
    for (int64_t n = lo; n < hi; n++) {
        int64_t row = SUFFIX(rnn_row)(d, n, t);
        REAL *restrict h = c->y + (n * TY + t) * H;
        const REAL *restrict hp = t ? c->y + (n * TY + t - 1) * H
                                    : c->h0 + (d->h0_rows ? n : 0) * H;
        if (d->cell == NB_SEQ_ELMAN) {
            SUFFIX(nb_vm_tanh)(H, h, h);
        } else if (d->cell == NB_SEQ_LSTM) {
            REAL *a = c->gates + row * 4 * H;
            REAL *cc = c->aux + row * H;
            REAL *tc = c->aux + (T * d->n + row) * H;
            const REAL *cp = t ? c->aux + SUFFIX(rnn_row)(d, n, t - 1) * H
                               : c->c0 + (d->c0_rows ? n : 0) * H;
            SUFFIX(nb_vm_lstm_cell)(H, a, cp, cc, tc, h);
            if (d->final_cell && t == T - 1)
                memcpy(h + H, cc, (size_t)H * sizeof(REAL));
        } else {
            REAL *a = c->gates + row * 3 * H, *hn = c->aux + row * H;
            const REAL *gh = c->rec + n * 3 * H;
            for (int64_t j = 0; j < 2 * H; j++)
                a[j] += gh[j];
            SUFFIX(nb_vm_sigmoid)(2 * H, a, a);
            REAL *an = a + 2 * H;
            for (int64_t j = 0; j < H; j++) {
                hn[j] = gh[2 * H + j];
                an[j] += a[j] * hn[j];
            }
            SUFFIX(nb_vm_tanh)(H, an, an);
            const REAL *z = a + H;
            for (int64_t j = 0; j < H; j++)
                h[j] = (1 - z[j]) * an[j] + z[j] * hp[j];
        }
        memcpy(c->step + n * c->ld_step, h, (size_t)H * sizeof(REAL));
    }
}

static void SUFFIX(rnn_backward_rows)(const SUFFIX(rnn_call) *c, int64_t lo,
                                      int64_t hi)
{
    const nb_rnn_dims *d = c->d;
    int64_t H = d->h, T = d->t, t = c->t, TY = T + (d->final_cell ? 1 : 0);
    int64_t gh = d->cell * H;
    /* Each writes the step's copy of its recurrent messages alongside. */
    for (int64_t n = lo; n < hi; n++) {
        int64_t row = SUFFIX(rnn_row)(d, n, t);
        const REAL *restrict dyr = c->dy + (n * TY + t) * H;
        const REAL *restrict h = c->y + (n * TY + t) * H;
        REAL *restrict dhn = c->dhn + n * H, *restrict da = c->dax + row * gh;
        REAL *restrict step = c->step + n * c->ld_step;
        if (d->cell == NB_SEQ_ELMAN) {
            for (int64_t j = 0; j < H; j++)
                da[j] = step[j] = (dyr[j] + dhn[j]) * (1 - h[j] * h[j]);
        } else if (d->cell == NB_SEQ_LSTM) {
            const REAL *tc = c->aux + (T * d->n + row) * H;
            const REAL *cp = t ? c->aux + SUFFIX(rnn_row)(d, n, t - 1) * H
                               : c->c0 + (d->c0_rows ? n : 0) * H;
            SUFFIX(nb_vm_lstm_cell_back)(H, c->gates + row * 4 * H, cp, tc,
                                         dyr, dhn, c->dc + n * H, da, step);
        } else {
            const REAL *hp = t ? h - H : c->h0 + (d->h0_rows ? n : 0) * H;
            SUFFIX(nb_vm_gru_cell_back)(H, c->gates + row * 3 * H,
                                        c->aux + row * H, hp, dyr, dhn, da,
                                        c->dah + row * gh, step);
        }
    }
}

static void SUFFIX(rnn_body)(void *ctx, int64_t lo, int64_t hi, int thread,
                             int threads)
{
    (void)thread, (void)threads;
    const SUFFIX(rnn_call) *c = ctx;
    if (c->kernel == RNN_FORWARD_STEP)
        SUFFIX(rnn_forward_rows)(c, lo, hi);
    else
        SUFFIX(rnn_backward_rows)(c, lo, hi);
}

/* ---- forward ---- */

void SUFFIX(nb_rnn_forward)(const nb_rnn_dims *d, const REAL *x,
                            const REAL *h0, const REAL *c0, const REAL *w_ih,
                            const REAL *w_hh, const REAL *b_ih,
                            const REAL *b_hh, REAL *y, void *scratch,
                            void *workspace)
{
    int64_t N = d->n, T = d->t, E = d->e, H = d->h, gh = d->cell * H;
    int64_t rows = N * T, TY = T + (d->final_cell ? 1 : 0);
    char *ws = workspace;
    void *gemm_ws = ws;
    int64_t ldw = SUFFIX(rnn_ld)(gh);
    bool fuse_x = SUFFIX(rnn_fuse_x)(d);
    int64_t ldh = fuse_x ? SUFFIX(rnn_ld)(H + E) : H;
    REAL *wt = (REAL *)(ws + SUFFIX(rnn_gemm_ws)(d));
    REAL *bias = wt + SUFFIX(rnn_round)((H + E) * ldw);
    REAL *row0 = bias + SUFFIX(rnn_round)(gh);
    REAL *hstep = row0 + SUFFIX(rnn_round)(gh);
    REAL *rec = hstep + SUFFIX(rnn_round)(N * SUFFIX(rnn_ld)(H + E));
    /* Elman's pre-activations are its outputs (y is [N, T, H]); the gated
     * cells keep theirs in the scratch, activated in place. */
    REAL *gates = d->cell == NB_SEQ_ELMAN ? y : scratch;
    REAL *aux = gates + rows * gh;
    if (d->final_cell && T == 0)
        for (int64_t n = 0; n < N; n++)
            memcpy(y + n * TY * H, c0 + (d->c0_rows ? n : 0) * H, (size_t)H * sizeof(REAL));
    if (rows == 0 || H == 0)
        return;
    /* GRU's b_hn sits inside r * (W_hn h + b_hn), so its b_hh joins the
     * recurrent product; the others add both biases to the projection. */
    bool hh_in_proj = d->cell != NB_SEQ_GRU;
    for (int64_t j = 0; j < gh; j++)
        bias[j] = (b_ih ? b_ih[j] : 0) + (b_hh && hh_in_proj ? b_hh[j] : 0);
    /* w_hh^T [H, G H] (then w_ih^T [E, G H] when fused), so each step's
     * product reads its rows in place (the GEMM's unpacked path for a few
     * rows of A). */
    SUFFIX(nb_transpose)(gh, H, w_hh, H, wt, ldw);
    static nb_parallel_site site = NB_PARALLEL_SITE("rnn.forward_" DTYPE,
                                                    RNN_GRAIN);
    SUFFIX(rnn_call) call = {.kernel = RNN_FORWARD_STEP, .d = d, .h0 = h0,
                             .c0 = c0, .y = y, .gates = gates, .aux = aux,
                             .rec = rec, .step = hstep, .ld_step = ldh};
    if (fuse_x) {
        /* One product a step, [h_{t-1} | x_t] [W_hh | W_ih]^T onto the
         * bias: the gates are written once, while in cache, rather than
         * projected for all steps up front and read back cold. */
        SUFFIX(nb_transpose)(gh, E, w_ih, E, wt + H * ldw, ldw);
        for (int64_t n = 0; n < N; n++)
            memcpy(hstep + n * ldh, h0 + (d->h0_rows ? n : 0) * H,
                   (size_t)H * sizeof(REAL));
        bool by_step = SUFFIX(rnn_by_step)(d);
        for (int64_t t = 0; t < T; t++) {
            for (int64_t n = 0; n < N; n++) {
                memcpy(hstep + n * ldh + H, x + (n * T + t) * E,
                       (size_t)E * sizeof(REAL));
                memcpy(gates + SUFFIX(rnn_row)(d, n, t) * gh, bias,
                       (size_t)gh * sizeof(REAL));
            }
            SUFFIX(nb_gemm)(false, false, N, gh, H + E, 1, hstep, ldh, wt,
                            ldw, 1, gates + (by_step ? t * N : t) * gh,
                            by_step ? gh : T * gh, gemm_ws);
            call.t = t;
            nb_parallel_for(&site, N, N * gh, INT32_MAX, SUFFIX(rnn_body),
                            &call);
        }
        return;
    }
    /* The bias joins each step's rows just before its recurrent product,
     * while they are in cache, rather than as a first copy into all of
     * them (b + xW and xW + b are the same sum). */
    SUFFIX(nb_gemm)(false, true, rows, gh, E, 1, x, E, w_ih, E, 0, gates, gh,
                    gemm_ws);
    for (int64_t t = 0; t < T; t++) {
        /* h_{t-1}: the rows step t-1 left in hstep, or h0 */
        const REAL *hp = t ? hstep : h0;
        for (int64_t n = 0; n < N; n++) {
            REAL *g = gates + (n * T + t) * gh;
            for (int64_t j = 0; j < gh; j++)
                g[j] += bias[j];
        }
        if (t == 0 && !d->h0_rows) {
            /* h0 shared by the batch: its product once, added to each
             * row (GRU's rows of the recurrent product, the others' gate
             * rows). */
            SUFFIX(nb_gemm)(false, false, 1, gh, H, 1, h0, H, wt, ldw, 0, row0,
                            gh, gemm_ws);
            for (int64_t n = 0; n < N; n++) {
                REAL *dst = d->cell == NB_SEQ_GRU ? rec + n * gh
                                                  : gates + n * T * gh;
                if (d->cell == NB_SEQ_GRU) {
                    if (b_hh)
                        memcpy(dst, b_hh, (size_t)gh * sizeof(REAL));
                    else
                        memset(dst, 0, (size_t)gh * sizeof(REAL));
                }
                for (int64_t j = 0; j < gh; j++)
                    dst[j] += row0[j];
            }
        } else if (d->cell == NB_SEQ_GRU) {
            for (int64_t n = 0; n < N; n++) {
                if (b_hh)
                    memcpy(rec + n * gh, b_hh, (size_t)gh * sizeof(REAL));
                else
                    memset(rec + n * gh, 0, (size_t)gh * sizeof(REAL));
            }
            SUFFIX(nb_gemm)(false, false, N, gh, H, 1, hp, H, wt, ldw, 1,
                            rec, gh, gemm_ws);
        } else {
            SUFFIX(nb_gemm)(false, false, N, gh, H, 1, hp, H, wt, ldw, 1,
                            gates + t * gh, T * gh, gemm_ws);
        }
        call.t = t;
        nb_parallel_for(&site, N, N * gh, INT32_MAX, SUFFIX(rnn_body), &call);
    }
}

/* ---- backward ---- */

static void SUFFIX(rnn_colsum)(int64_t rows, int64_t cols, const REAL *a,
                               REAL *acc)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++)
            acc[j] += a[r * cols + j];
}

void SUFFIX(nb_rnn_backward)(const nb_rnn_dims *d, const REAL *x,
                             const REAL *h0, const REAL *c0,
                             const REAL *w_ih, const REAL *w_hh,
                             const REAL *y, const REAL *dy,
                             const void *scratch, void *workspace,
                             const SUFFIX(nb_rnn_grads) *grad)
{
    int64_t N = d->n, T = d->t, E = d->e, H = d->h, gh = d->cell * H;
    int64_t rows = N * T, TY = T + (d->final_cell ? 1 : 0);
    bool gru = d->cell == NB_SEQ_GRU;
    char *ws = workspace;
    void *gemm_ws = ws;
    REAL *dax = (REAL *)(ws + SUFFIX(rnn_gemm_ws)(d));
    REAL *dah = gru ? dax + SUFFIX(rnn_round)(rows * gh) : dax;
    /* LSTM and Elman send the same da to both weights: one GEMM forms
     * [dW_ih | dW_hh] = da^T [x | h_prev], reading da once. */
    bool fuse_w = !gru && grad->w_ih && grad->w_hh;
    int64_t ldp = fuse_w || SUFFIX(rnn_by_step)(d) ? E + H : H;
    REAL *hprev = dah + SUFFIX(rnn_round)(rows * gh);
    REAL *dw = hprev + SUFFIX(rnn_round)(rows * (E + H));
    REAL *dbias = dw + SUFFIX(rnn_round)(gh * (E + H));
    REAL *dhn = dbias + SUFFIX(rnn_round)(gh);
    REAL *dc = dhn + SUFFIX(rnn_round)(N * H);
    int64_t ldr = SUFFIX(rnn_ld)(H), lds = SUFFIX(rnn_ld)(gh);
    REAL *whh = dc + SUFFIX(rnn_round)(N * H);
    REAL *dstep = whh + SUFFIX(rnn_round)(gh * ldr);
    REAL *gates = (REAL *)scratch;
    if (T > 1 || grad->h0)
        for (int64_t j = 0; j < gh; j++)
            memcpy(whh + j * ldr, w_hh + j * H, (size_t)H * sizeof(REAL));

    memset(dhn, 0, (size_t)(N * H) * sizeof(REAL));
    for (int64_t n = 0; n < N; n++) {
        if (d->final_cell)
            memcpy(dc + n * H, dy + (n * TY + T) * H,
                   (size_t)H * sizeof(REAL));
        else
            memset(dc + n * H, 0, (size_t)H * sizeof(REAL));
    }
    static nb_parallel_site site = NB_PARALLEL_SITE("rnn.backward_" DTYPE,
                                                    RNN_GRAIN);
    SUFFIX(rnn_call) call = {.kernel = RNN_BACKWARD_STEP, .d = d, .h0 = h0,
                             .c0 = c0, .dy = dy, .y = (REAL *)y,
                             .gates = gates,
                             .aux = gates ? gates + rows * gh : NULL,
                             .dax = dax, .dah = dah, .dhn = dhn, .dc = dc,
                             .step = dstep, .ld_step = lds};
    /* b_hh's gradient (and b_ih's, the same da, but for GRU) summed step
     * by step while the step's rows are in cache, in one order whatever
     * the threads. */
    bool sum_steps = grad->b_hh || (grad->b_ih && !gru);
    if (sum_steps)
        memset(dbias, 0, (size_t)gh * sizeof(REAL));
    for (int64_t t = T - 1; t >= 0 && H > 0; t--) {
        call.t = t;
        nb_parallel_for(&site, N, N * gh, INT32_MAX, SUFFIX(rnn_body), &call);
        for (int64_t n = 0; sum_steps && n < N; n++) {
            const REAL *r = dstep + n * lds;
            for (int64_t j = 0; j < gh; j++)
                dbias[j] += r[j];
        }
        if (t > 0 || grad->h0)
            SUFFIX(nb_gemm)(false, false, N, H, gh, 1, dstep, lds, whh, ldr,
                            gru ? 1 : 0, dhn, H, gemm_ws);
    }
    /* A state shared by the batch ([1, H]) sums its rows' messages. */
    if (grad->h0)
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < H; j++)
                grad->h0[(d->h0_rows ? n : 0) * H + j] += dhn[n * H + j];
    if (grad->c0 && d->cell == NB_SEQ_LSTM)
        for (int64_t n = 0; n < N; n++)
            for (int64_t j = 0; j < H; j++)
                grad->c0[(d->c0_rows ? n : 0) * H + j] += dc[n * H + j];
    if (rows == 0 || H == 0)
        return;
    /* The rows of dax by steps (rnn_row): dx in that order into the
     * space of hprev, then added to x's rows. */
    bool by_step = SUFFIX(rnn_by_step)(d);
    if (grad->x && by_step) {
        SUFFIX(nb_gemm)(false, false, rows, E, gh, 1, dax, gh, w_ih, E, 0,
                        hprev, E, gemm_ws);
        for (int64_t n = 0; n < N; n++)
            for (int64_t t = 0; t < T; t++) {
                const REAL *r = hprev + (t * N + n) * E;
                REAL *gx = grad->x + (n * T + t) * E;
                for (int64_t k = 0; k < E; k++)
                    gx[k] += r[k];
            }
    } else if (grad->x) {
        SUFFIX(nb_gemm)(false, false, rows, E, gh, 1, dax, gh, w_ih, E, 1,
                        grad->x, E, gemm_ws);
    }
    /* [x_t | h_{t-1}], the inputs of each step's products, in the rows of
     * dax: h0, then h_1.., after x_t when fused (x as it is otherwise). */
    if (grad->w_hh || (grad->w_ih && by_step))
        for (int64_t n = 0; n < N; n++)
            for (int64_t t = 0; t < T; t++) {
                REAL *r = hprev + SUFFIX(rnn_row)(d, n, t) * ldp;
                const REAL *src = t ? y + (n * TY + t - 1) * H
                                    : h0 + (d->h0_rows ? n : 0) * H;
                if (ldp == E + H)
                    memcpy(r, x + (n * T + t) * E, (size_t)E * sizeof(REAL));
                memcpy(r + ldp - H, src, (size_t)H * sizeof(REAL));
            }
    if (grad->w_ih && !fuse_w)
        SUFFIX(nb_gemm)(true, false, gh, E, rows, 1, dax, gh,
                        by_step ? hprev : x, by_step ? ldp : E, 1,
                        grad->w_ih, E, gemm_ws);
    if (grad->w_hh) {
        if (fuse_w) {
            SUFFIX(nb_gemm)(true, false, gh, E + H, rows, 1, dah, gh, hprev,
                            ldp, 0, dw, E + H, gemm_ws);
            for (int64_t j = 0; j < gh; j++) {
                const REAL *r = dw + j * (E + H);
                REAL *gi = grad->w_ih + j * E, *gw = grad->w_hh + j * H;
                for (int64_t k = 0; k < E; k++)
                    gi[k] += r[k];
                for (int64_t k = 0; k < H; k++)
                    gw[k] += r[E + k];
            }
        } else {
            SUFFIX(nb_gemm)(true, false, gh, H, rows, 1, dah, gh,
                            hprev + ldp - H, ldp, 1, grad->w_hh, H, gemm_ws);
        }
    }
    if (grad->b_ih && gru)
        SUFFIX(rnn_colsum)(rows, gh, dax, grad->b_ih);
    for (int64_t j = 0; j < gh && sum_steps; j++) {
        if (grad->b_ih && !gru)
            grad->b_ih[j] += dbias[j];
        if (grad->b_hh)
            grad->b_hh[j] += dbias[j];
    }
}
