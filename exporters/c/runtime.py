"""C helper functions the generated code includes, each only when a layer needs it.

Every helper is ``static`` (file-local), uses only ``<stdint.h>``/``<string.h>`` and plain
integer or float32 arithmetic, and has its dependencies listed in :data:`DEPENDS`, so a
generated file holds exactly what it calls (``-Wunused-function -Werror`` stays quiet).

The exact accumulator (``xa_*``) is the heart of the float mode: a synaptic or pool sum
of float32 values is accumulated *exactly* as a fixed-point integer in 32-bit limbs
(held in ``int64_t`` so carries can wait until the end) and rounded once, to nearest with
ties to even, into a float32. Value of the accumulator: ``sum_i a[i] * 2^(32 i + e0)``
with ``e0 = -149`` (the float32 grid) for sums of float32 values and of integer code x
float32 products, and ``e0 = -298`` for products of two float32 values. This is the
rounding rule of docs/semantics.md ("accumulated exactly and rounded once") computed
with integers only, so the result does not depend on the order of the terms and needs
no double-precision unit (a Cortex-M4F has none).
"""

from __future__ import annotations

from slt_deploy import ratecode

# name -> (C source, dependencies). Word-size dependent parts use W_T / WB / WSH / WM,
# which the generated file defines before the helpers.
HELPERS: dict[str, tuple[str, tuple[str, ...]]] = {}


def _helper(name: str, deps: tuple[str, ...], src: str) -> None:
    HELPERS[name] = (src.strip("\n") + "\n", deps)


_helper("bit", (), r"""
#define BIT(buf, i) ((uint32_t)(((buf)[(uint32_t)(i) >> WSH] >> ((uint32_t)(i) & WM)) & 1u))
""")

_helper("popc", (), r"""
/* Population count of one word (portable SWAR; one instruction where the CPU has it). */
static uint32_t popc(W_T x)
{
#if defined(__GNUC__) && defined(__POPCNT__)
    return (uint32_t)__builtin_popcountll((unsigned long long)x);
#else
#if WB == 64
    x = x - ((x >> 1) & (W_T)0x5555555555555555ull);
    x = (x & (W_T)0x3333333333333333ull) + ((x >> 2) & (W_T)0x3333333333333333ull);
    x = (x + (x >> 4)) & (W_T)0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * (W_T)0x0101010101010101ull) >> 56);
#else
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0f0f0f0fu;
    return (uint32_t)((x * 0x01010101u) >> 24);
#endif
#endif
}
""")

_helper("ctz", (), r"""
/* Index of the lowest set bit of a nonzero word. */
static uint32_t ctz(W_T x)
{
#if defined(__GNUC__)
#if WB == 64 && defined(__LP64__)
    return (uint32_t)__builtin_ctzll((unsigned long long)x);
#elif WB == 64                                  /* 32-bit core: no libgcc call */
    const uint32_t lo = (uint32_t)x;
    return lo ? (uint32_t)__builtin_ctz(lo) : 32u + (uint32_t)__builtin_ctz((unsigned int)(x >> 32));
#else
    return (uint32_t)__builtin_ctz((unsigned int)x);
#endif
#else
    uint32_t n = 0;
    while (!(x & 1u)) { x >>= 1; ++n; }
    return n;
#endif
}
""")

_helper("bits_at", (), r"""
/* WB bits of a bit vector of nw words starting at bit pos (zeros past the end). */
static W_T bits_at(const W_T *x, uint32_t pos, uint32_t nw)
{
    const uint32_t i = pos >> WSH, o = pos & WM;
    W_T w = i < nw ? x[i] >> o : 0u;
    if (o && i + 1u < nw) w |= x[i + 1u] << (WB - o);
    return w;
}
""")

_helper("fbits", (), r"""
/* Bit pattern of a float32 (union punning is defined behaviour in C99). */
static uint32_t fbits(float x)
{
    union { float f; uint32_t u; } c;
    c.f = x;
    return c.u;
}
""")

_helper("bitsf", (), r"""
/* The float32 with bit pattern u. */
static float bitsf(uint32_t u)
{
    union { float f; uint32_t u; } c;
    c.u = u;
    return c.f;
}
""")

_helper("xa_add", (), r"""
/* a += v * 2^s (|v| < 2^31, s >= 0): one term into the exact accumulator. */
static void xa_add(int64_t *a, int32_t v, uint32_t s)
{
    const int64_t q = (int64_t)v * ((int64_t)1 << (s & 31u)); /* |q| < 2^62 */
    const int64_t hi = q >> 32;                                /* floor(q / 2^32) */
    a[s >> 5] += q - hi * (int64_t)4294967296;                 /* low 32 bits, >= 0 */
    a[(s >> 5) + 1] += hi;
}
""")

_helper("xa_split", (), r"""
/* A finite float32 as m * 2^(e - 150): signed significand |m| < 2^24, e >= 1. */
static int32_t xa_split(uint32_t u, uint32_t *e)
{
    uint32_t ex = (u >> 23) & 0xffu;
    int32_t m = (int32_t)(u & 0x7fffffu);
    if (ex) m |= 0x800000; else ex = 1u;
    *e = ex;
    return (u >> 31) ? -m : m;
}
""")

_helper("xa_x", ("xa_add", "xa_split", "fbits"), r"""
/* a += x (grid 2^-149). */
static void xa_x(int64_t *a, float x)
{
    uint32_t e;
    const int32_t m = xa_split(fbits(x), &e);
    xa_add(a, m, e - 1u);
}
""")

_helper("xa_w", ("xa_add", "xa_split"), r"""
/* a += w for a float32 weight given by its bits (grid 2^-149). */
static void xa_w(int64_t *a, uint32_t w)
{
    uint32_t e;
    const int32_t m = xa_split(w, &e);
    xa_add(a, m, e - 1u);
}
""")

_helper("xa_cx", ("xa_add", "xa_split", "fbits"), r"""
/* a += c * x for an integer code |c| <= 128 (grid 2^-149). */
static void xa_cx(int64_t *a, int32_t c, float x)
{
    uint32_t e;
    const int32_t m = xa_split(fbits(x), &e);
    xa_add(a, c * m, e - 1u);
}
""")

_helper("xa_wx", ("xa_add", "xa_split", "fbits"), r"""
/* a += w * x for float32 w (bits) and x (grid 2^-298): the 48-bit product in two halves. */
static void xa_wx(int64_t *a, uint32_t w, float x)
{
    uint32_t ew, ex;
    const int32_t mw = xa_split(w, &ew), mx = xa_split(fbits(x), &ex);
    const int64_t p = (int64_t)mw * (int64_t)mx;
    const int64_t hi = p >> 24;
    const uint32_t s = ew + ex - 2u;
    xa_add(a, (int32_t)(p - hi * (int64_t)16777216), s);
    xa_add(a, (int32_t)hi, s + 24u);
}
""")

_helper("xa_round", ("f32_pack",), r"""
/* Round the exact value sum_i a[i] 2^(32 i + e0) once to float32 (nearest, ties to even).
 * Destroys a. Exact zero gives +0. */
static float xa_round(int64_t *a, uint32_t n, int32_t e0)
{
    uint32_t i, top, hb, sh, keep, half, sticky, sign = 0u;
    int32_t u;
    for (i = 0; i + 1u < n; ++i) {            /* carries: limbs 0..n-2 into [0, 2^32) */
        const int64_t c = a[i] >> 32;
        a[i] -= c * (int64_t)4294967296;
        a[i + 1u] += c;
    }
    if (a[n - 1u] < 0) {                      /* negative: take the magnitude */
        sign = 0x80000000u;
        for (i = 0; i < n; ++i) a[i] = -a[i];
        for (i = 0; i + 1u < n; ++i) {
            const int64_t c = a[i] >> 32;
            a[i] -= c * (int64_t)4294967296;
            a[i + 1u] += c;
        }
    }
    top = n;
    while (top > 0u && a[top - 1u] == 0) --top;
    if (top == 0u) return 0.0f;
    --top;
    {   /* highest set bit of the magnitude */
        uint32_t w = (uint32_t)a[top], b = 0u;
        if (w >> 16) { w >>= 16; b += 16u; }
        if (w >> 8) { w >>= 8; b += 8u; }
        if (w >> 4) { w >>= 4; b += 4u; }
        if (w >> 2) { w >>= 2; b += 2u; }
        if (w >> 1) { b += 1u; }
        hb = 32u * top + b;
    }
    u = (int32_t)hb + e0 - 23;                /* exponent of the last kept bit */
    if (u < -149) u = -149;                   /* subnormal range */
    sh = (uint32_t)(u - e0);                  /* dropped low bits (e0 <= -149) */
    {
        const uint32_t li = sh >> 5, lo = sh & 31u;
        const uint64_t w0 = (uint64_t)a[li], w1 = (li + 1u < n) ? (uint64_t)a[li + 1u] : 0u;
        keep = (uint32_t)(((w0 >> lo) | (w1 << (32u - lo))) & 0xffffffu);
    }
    half = 0u;
    sticky = 0u;
    if (sh > 0u) {
        const uint32_t r = sh - 1u, li = r >> 5, lo = r & 31u;
        half = (uint32_t)((uint64_t)a[li] >> lo) & 1u;
        if ((uint64_t)a[li] & (((uint64_t)1 << lo) - 1u)) sticky = 1u;
        for (i = 0; i < li && !sticky; ++i) if (a[i]) sticky = 1u;
    }
    return f32_pack(sign, keep, u, half, sticky);
}
""")

_helper("f32_pack", ("bitsf",), r"""
/* The float32 sign | keep * 2^u rounded to nearest even by the dropped bits (half, sticky);
 * keep < 2^24, u >= -149. */
static float f32_pack(uint32_t sign, uint32_t keep, int32_t u, uint32_t half, uint32_t sticky)
{
    uint32_t out;
    if (half && (sticky || (keep & 1u))) {
        ++keep;
        if (keep == 0x1000000u) { keep >>= 1; ++u; }
    }
    if (u > 104) return bitsf(sign | 0x7f800000u);                 /* overflow: inf */
    if (keep < 0x800000u) out = keep;                                /* subnormal */
    else out = ((uint32_t)(u + 150) << 23) | (keep & 0x7fffffu);
    return bitsf(sign | out);
}
""")

_helper("i64_round", ("f32_pack",), r"""
/* n * 2^e0 rounded once to float32 (nearest, ties to even); |n| < 2^63. */
static float i64_round(int64_t n, int32_t e0)
{
    const uint32_t sign = n < 0 ? 0x80000000u : 0u;
    const uint64_t m = n < 0 ? (uint64_t)(-n) : (uint64_t)n;
    uint32_t hb = 0u, keep, half = 0u, sticky = 0u;
    int32_t u;
    if (m == 0u) return 0.0f;
    {   /* highest set bit */
        uint64_t w = m;
        if (w >> 32) { w >>= 32; hb += 32u; }
        if (w >> 16) { w >>= 16; hb += 16u; }
        if (w >> 8) { w >>= 8; hb += 8u; }
        if (w >> 4) { w >>= 4; hb += 4u; }
        if (w >> 2) { w >>= 2; hb += 2u; }
        if (w >> 1) { hb += 1u; }
    }
    u = (int32_t)hb + e0 - 23;
    if (u < -149) u = -149;
    if (u <= e0) {                                 /* exact: shift left */
        keep = (uint32_t)(m << (uint32_t)(e0 - u));
    } else {
        const uint32_t sh = (uint32_t)(u - e0);    /* 1 .. 63 + ... */
        keep = sh < 64u ? (uint32_t)(m >> sh) : 0u;
        half = sh - 1u < 64u ? (uint32_t)(m >> (sh - 1u)) & 1u : 0u;
        sticky = sh - 1u < 64u ? ((m & (((uint64_t)1 << (sh - 1u)) - 1u)) != 0u) : (m != 0u);
    }
    return f32_pack(sign, keep, u, half, sticky);
}
""")

_helper("xa_range", ("fbits",), r"""
/* Smallest and largest exponent field (subnormals count as 1) of the nonzero x[i]; 1, 1 if none. */
static void xa_range(const float *x, uint32_t n, uint32_t *lo, uint32_t *hi)
{
    uint32_t i, a = 255u, b = 1u;
    for (i = 0; i < n; ++i) {
        const uint32_t u = fbits(x[i]);
        uint32_t e = (u >> 23) & 0xffu;
        if (!(u & 0x7fffffffu)) continue;
        if (e == 0u) e = 1u;
        if (e < a) a = e;
        if (e > b) b = e;
    }
    *lo = a == 255u ? 1u : a;
    *hi = b;
}
""")

_helper("rate_code", ("fbits",), ratecode.C_SOURCE)


def helper_source(names: set[str]) -> str:
    """C source of ``names`` and everything they depend on, in a stable order."""
    order: list[str] = []

    def visit(n: str) -> None:
        if n in order:
            return
        for d in HELPERS[n][1]:
            visit(d)
        order.append(n)

    for n in sorted(names, key=list(HELPERS).index):
        visit(n)
    return "\n".join(HELPERS[n][0] for n in order)
