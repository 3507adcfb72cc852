/* core/ops_attn_tiles.h - the register-tiled direct attention path at one vector width
 * (internal: included by core/ops_attn.c once per width, nothing else includes it).
 *
 * Before each inclusion ops_attn.c defines
 *   QL          query lanes per vector: 16, 8 or 4
 *   FN(name)    the name with the width's suffix (attn_head_tiled -> attn_head_tiled_w16)
 *   TARGET      the ISA attribute: target("avx512f"), target("avx2") or nothing
 * and this file defines FN(attn_head_tiled) (forward) and FN(attn_head_bwd_tiled) for that
 * width; ops_attn.c picks one at run time from the CPU's features.
 *
 * Why one file per width instead of target_clones: gcc lowers a vector wider than the ISA's
 * registers through memory (16 lanes under AVX2 ran 10x slower than 8), so each ISA gets the
 * lane count it holds in registers. The width never changes a bit: every element is computed
 * by the same scalar operations in the same order whatever lane or vector it sits in (sums
 * over k in increasing order, the softmax down the rows of one lane, no cross-lane sums), so
 * all widths give the same bits; test_ops_attn forces each width the CPU has and compares. */

#if QL == 16
#define VT rl_v16
#define VTI rl_v16i
#define LDV RL_LD16
#define STV RL_ST16
#define EXPV rl_expf_v16
#elif QL == 8
#define VT rl_v8
#define VTI rl_v8i
#define LDV RL_LD8
#define STV RL_ST8
#define EXPV rl_expf_v8
#else
#define VT rl_v4
#define VTI rl_v4i
#define LDV RL_LD4
#define STV RL_ST4
#define EXPV rl_expf_v4
#endif

/* c (mr, N) = alpha * A (mr, K) @ b (K, N), or c += that when acc; A's element (r, k) is
 * a[r * ars + k * aks], b's rows are ldb apart, c's ldc apart; mr = MR or 1. Columns go in
 * blocks of QL, then narrower vectors, then scalars (TILE_COLS, ops_attn.c). */
static inline __attribute__((always_inline)) TARGET void
FN(tile_mm)(float *restrict c, size_t ldc, const float *restrict a, size_t ars, size_t aks,
            const float *restrict b, size_t ldb, int K, int N, int mr, float alpha, int acc)
{
    int j = 0;
#if QL >= 16
    TILE_COLS(rl_v16, 16, RL_LD16, RL_ST16)
#endif
#if QL >= 8
    TILE_COLS(rl_v8, 8, RL_LD8, RL_ST8)
#endif
    TILE_COLS(rl_v4, 4, RL_LD4, RL_ST4)
    TILE_COLS(float, 1, LD1, ST1)
}

/* Rows [j0, j1) of c (rows ldc apart) = alpha * A @ b as FN(tile_mm), MR rows at a time; A's
 * row r starts at a + r * ars. */
static inline __attribute__((always_inline)) TARGET void
FN(rows_mm)(float *restrict c, size_t ldc, const float *restrict a, size_t ars, size_t aks,
            const float *restrict b, size_t ldb, int K, int N, int nrows, float alpha, int acc)
{
    for (int r = 0; r < nrows;) {
        const int mr = nrows - r >= MR ? MR : 1;
        FN(tile_mm)(c + (size_t)r * ldc, ldc, a + (size_t)r * ars, ars, aks, b, ldb, K, N, mr,
                    alpha, acc);
        r += mr;
    }
}

/* Mask of the lanes (queries i0 + lane) that see key j under the causal mask: j <= i0 + lane. */
static inline __attribute__((always_inline)) TARGET VTI FN(lanes_see)(int i0, int j)
{
#if QL == 16
    const VTI iota = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
#elif QL == 8
    const VTI iota = { 0, 1, 2, 3, 4, 5, 6, 7 };
#else
    const VTI iota = { 0, 1, 2, 3 };
#endif
    return (iota + i0) >= j;
}

/* st (jn, QL): in place, each lane (query i0 + lane) gets the softmax over keys j < jn of its
 * column of scores, masked keys (causal) exactly 0. Max, exponentials, sum and scaling run
 * down the rows, one query per lane: no reduction across lanes. The sum takes 4 partial sums
 * (j mod 4) combined as (s0 + s1) + (s2 + s3). */
static inline __attribute__((always_inline)) TARGET void
FN(softmax_cols)(float *st, int jn, int i0, int causal)
{
    const VT zero = { 0 }, ninf = zero - INFINITY;
    VT mx = ninf;
    for (int j = 0; j < jn; j++) {
        VT x = LDV(st + (size_t)j * QL);
        if (causal) x = RL_SEL(VT, VTI, FN(lanes_see)(i0, j), x, ninf);
        mx = RL_SEL(VT, VTI, x > mx, x, mx);
    }
    VT s[4] = { zero, zero, zero, zero };
    for (int j = 0; j < jn; j++) {
        VT e = LDV(st + (size_t)j * QL);
        if (causal) e = RL_SEL(VT, VTI, FN(lanes_see)(i0, j), e, ninf);   // exp(-inf) = 0
        e = e - mx;
        EXPV(&e);
        s[j & 3] = s[j & 3] + e;
        STV(st + (size_t)j * QL, e);
    }
    const VT inv = 1.0f / ((s[0] + s[1]) + (s[2] + s[3]));
    for (int j = 0; j < jn; j++) STV(st + (size_t)j * QL, LDV(st + (size_t)j * QL) * inv);
}

// ---- forward --------------------------------------------------------------------------------

/* One (b, head) with head_is_tiled(Tk, HS): q_h (Tq, HS), k_h, v_h (Tk, HS), out_h (Tq, HS),
 * rows ld apart; att_h (Tq, Tk) receives the probabilities (masked entries 0) when keep.
 * Blocks of QL queries, one per vector lane: q^T (HS, QL) of the block, scores
 * s^T (Tk, QL) = scale k q^T in register tiles over d, the softmax down each lane, then
 * out = p v in register tiles over the keys, broadcasting p from s^T. nq, nk: offsets of the
 * next head's q/out and k/v slices, prefetched. */
static TARGET void FN(attn_head_tiled)(float *out_h, float *att_h, const float *q_h,
                                       const float *k_h, const float *v_h, int Tq, int Tk,
                                       int HS, size_t ld, float scale, int causal, int keep,
                                       size_t nq, size_t nk)
{
    float qt[HS_MAX * QL], st[TK_MAX * QL];   // q^T (HS, QL), s^T then p^T (Tk, QL)
    prefetch_rows(q_h + nq, Tq, HS, ld, 0);
    prefetch_rows(k_h + nk, Tk, HS, ld, 0);
    prefetch_rows(v_h + nk, Tk, HS, ld, 0);
    prefetch_rows(out_h + nq, Tq, HS, ld, 1);
    for (int i0 = 0; i0 < Tq; i0 += QL) {
        const int qn = Tq - i0 < QL ? Tq - i0 : QL;            // queries in this block
        const int jn = visible_keys(i0 + qn - 1, Tk, causal);   // keys any of them sees
        transpose(qt, QL, q_h + (size_t)i0 * ld, ld, qn, HS);
        for (int d = 0; d < HS; d++)
            for (int l = qn; l < QL; l++) qt[(size_t)d * QL + l] = 0.0f;
        // s^T (jn, QL) = scale k (jn, HS) @ q^T (HS, QL)
        FN(rows_mm)(st, QL, k_h, ld, 1, qt, QL, HS, QL, jn, scale, 0);
        // p^T = softmax over the keys, per lane
        FN(softmax_cols)(st, jn, i0, causal);
        // out (qn, HS) = p (qn, jn) @ v (jn, HS), p (i, j) = st[j * QL + i]; each MR-row tile
        // stops at the keys its last row sees (masked p are exactly 0)
        for (int i = 0; i < qn;) {
            const int mr = qn - i >= MR ? MR : 1;
            const int jr = visible_keys(i0 + i + mr - 1, Tk, causal);
            FN(tile_mm)(out_h + (size_t)(i0 + i) * ld, ld, st + i, 1, QL, v_h, ld, jr, HS, mr,
                        1.0f, 0);
            i += mr;
        }
        if (keep) {
            float *att_b = att_h + (size_t)i0 * Tk;   // (qn, Tk)
            transpose(att_b, Tk, st, QL, jn, qn);
            for (int i = 0; i < qn; i++)
                for (int j = jn; j < Tk; j++) att_b[(size_t)i * Tk + j] = 0.0f;
        }
    }
}

// ---- backward -------------------------------------------------------------------------------

/* One (b, head) with head_is_tiled(Tk, HS), blocks of QL queries as in the forward: p^T
 * (Tk, QL) and dout^T (HS, QL) of the block on the stack, then
 *   dp^T = v dout^T,  ds^T = p^T (dp^T - sum_j p dp)  (sums down each lane),  dq += scale ds k
 * in register tiles, broadcasting ds from the transposed block; ds goes to ds_h (Tq, Tk), and
 * after the last block  dk += scale ds^T q,  dv += p^T dout  sum over all Tq queries at once
 * (per block they would be summed in an order that depends on QL). Gradients may be NULL
 * (skipped); nq, nk as in the forward. */
static TARGET void FN(attn_head_bwd_tiled)(float *dq_h, float *dk_h, float *dv_h, float *ds_h,
                                           const float *dout_h, const float *p_h,
                                           const float *q_h, const float *k_h, const float *v_h,
                                           int Tq, int Tk, int HS, size_t ld, float scale,
                                           int causal, size_t nq, size_t nk)
{
    float dot[HS_MAX * QL];                         // dout^T (HS, QL)
    float pt[TK_MAX * QL], dst[TK_MAX * QL];        // p^T; dp^T then ds^T (Tk, QL)
    prefetch_rows(dout_h + nq, Tq, HS, ld, 0);
    prefetch_rows(q_h + nq, Tq, HS, ld, 0);
    prefetch_rows(k_h + nk, Tk, HS, ld, 0);
    prefetch_rows(v_h + nk, Tk, HS, ld, 0);
    if (dq_h) prefetch_rows(dq_h + nq, Tq, HS, ld, 1);
    if (dk_h) prefetch_rows(dk_h + nk, Tk, HS, ld, 1);
    if (dv_h) prefetch_rows(dv_h + nk, Tk, HS, ld, 1);
    // dv (Tk, HS) += p^T (Tk, Tq) @ dout (Tq, HS), p^T (j, i) = p_h[i * Tk + j]
    if (dv_h) FN(rows_mm)(dv_h, ld, p_h, 1, Tk, dout_h, ld, Tq, HS, Tk, 1.0f, 1);
    if (!dq_h && !dk_h) return;
    for (int i0 = 0; i0 < Tq; i0 += QL) {
        const int qn = Tq - i0 < QL ? Tq - i0 : QL;            // queries in this block
        const int jn = visible_keys(i0 + qn - 1, Tk, causal);   // keys any of them sees
        const float *do_b = dout_h + (size_t)i0 * ld;           // (qn, HS)
        // p^T (jn, QL) and dout^T (HS, QL); masked entries of att are 0 already, padding
        // lanes are set to 0
        transpose(pt, QL, p_h + (size_t)i0 * Tk, Tk, qn, jn);
        for (int j = 0; j < jn; j++)
            for (int l = qn; l < QL; l++) pt[(size_t)j * QL + l] = 0.0f;
        transpose(dot, QL, do_b, ld, qn, HS);
        for (int d = 0; d < HS; d++)
            for (int l = qn; l < QL; l++) dot[(size_t)d * QL + l] = 0.0f;
        // dp^T (jn, QL) = v (jn, HS) @ dout^T (HS, QL)
        FN(rows_mm)(dst, QL, v_h, ld, 1, dot, QL, HS, QL, jn, 1.0f, 0);
        // ds = p (dp - c), c = sum_j p dp per query (lane): 4 partial sums, j mod 4
        const VT zero = { 0 };
        VT c4[4] = { zero, zero, zero, zero };
        for (int j = 0; j < jn; j++)
            c4[j & 3] = c4[j & 3] + LDV(pt + (size_t)j * QL) * LDV(dst + (size_t)j * QL);
        const VT c = (c4[0] + c4[1]) + (c4[2] + c4[3]);
        for (int j = 0; j < jn; j++) {
            float *dsj = dst + (size_t)j * QL;
            STV(dsj, LDV(pt + (size_t)j * QL) * (LDV(dsj) - c));
        }
        // dq (qn, HS) += scale ds (qn, jn) @ k (jn, HS), ds (i, j) = dst[j * QL + i]
        if (dq_h) {
            for (int i = 0; i < qn;) {
                const int mr = qn - i >= MR ? MR : 1;
                const int jr = visible_keys(i0 + i + mr - 1, Tk, causal);
                FN(tile_mm)(dq_h + (size_t)(i0 + i) * ld, ld, dst + i, 1, QL, k_h, ld, jr, HS,
                            mr, scale, 1);
                i += mr;
            }
        }
        // ds rows of this block, masked keys 0
        if (dk_h) {
            float *ds_b = ds_h + (size_t)i0 * Tk;   // (qn, Tk)
            transpose(ds_b, Tk, dst, QL, jn, qn);
            for (int i = 0; i < qn; i++)
                for (int j = jn; j < Tk; j++) ds_b[(size_t)i * Tk + j] = 0.0f;
        }
    }
    // dk (Tk, HS) += scale ds^T (Tk, Tq) @ q (Tq, HS)
    if (dk_h) FN(rows_mm)(dk_h, ld, ds_h, 1, Tk, q_h, ld, Tq, HS, Tk, scale, 1);
}

#undef VT
#undef VTI
#undef LDV
#undef STV
#undef EXPV
