/* Instructions executed, counted with SysTick and calibrated against a loop of known length:
 * the method of the Rust firmware (firmware/src/instructions.rs), so the two are comparable.
 * qemu has no cycle counter, but under `-icount shift=0` every instruction advances virtual
 * time by 1 ns and SysTick counts the core clock in virtual time, so ticks are proportional
 * to instructions; the ratio is measured rather than assumed. */
#ifndef INSTRUCTIONS_H
#define INSTRUCTIONS_H

#include <stdint.h>

typedef struct {
    uint64_t instructions; /* of the known loop */
    uint64_t ticks;        /* SysTick ticks they took */
} calibration;

/* Starts SysTick on the core clock and calibrates it; 0 on success, -1 if SysTick does not
 * count. */
int instructions_calibrate(calibration *out);

/* Starts a measurement. */
void instructions_start(void);

/* Ends it: the instructions since instructions_start, or -1 if the counter wrapped (more
 * than 2^24 ticks). */
int64_t instructions_stop(const calibration *calibration);

#endif
