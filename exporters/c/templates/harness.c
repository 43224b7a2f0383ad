/* Host harness for a generated network (slt-deploy tests and benchmarks; not for the MCU).
 *
 *   harness IN OUT            per sample: T step outputs (NAME_step), then NAME_infer's counts and class
 *   harness IN OUT REPS       per sample: REPS timings of NAME_infer in nanoseconds (double)
 *
 * IN: int32 sample count, then per sample NAME_INFER_IN_LEN values of NAME_input_t.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "@P@.h"

static @P@_state state;
static @P@_input_t in[@PU@_INFER_IN_LEN];
static @P@_output_t out[@PU@_OUT_LEN];
static @P@_count_t counts[@PU@_N_OUT];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    FILE *fi, *fo;
    int32_t n, b;
    long reps = 0, r;
    unsigned t;
    if (argc < 3) return 2;
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) return 3;
    if (argc > 3) reps = atol(argv[3]);
    if (fread(&n, sizeof n, 1, fi) != 1) return 4;
    for (b = 0; b < n; ++b) {
        if (fread(in, sizeof in[0], @PU@_INFER_IN_LEN, fi) != @PU@_INFER_IN_LEN) return 5;
        if (reps == 0) {
            int cls;
            @P@_reset(&state);
            for (t = 0; t < @PU@_T; ++t) {
                const unsigned off = (@PU@_INFER_IN_LEN == @PU@_IN_LEN) ? 0u : t * @PU@_IN_LEN;
                @P@_step(&state, in + off, out);
                fwrite(out, sizeof out[0], @PU@_OUT_LEN, fo);
            }
            cls = @P@_infer(&state, in, counts);
            fwrite(counts, sizeof counts[0], @PU@_N_OUT, fo);
            fwrite(&cls, sizeof cls, 1, fo);
        } else {
            volatile int sink = 0;
            for (r = 0; r < reps; ++r) {
                const double t0 = now_ns();
                sink += @P@_infer(&state, in, counts);
                {
                    const double dt = now_ns() - t0;
                    fwrite(&dt, sizeof dt, 1, fo);
                }
            }
            (void)sink;
        }
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
