#include "instructions.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CSR_ENABLE (1u << 0)
#define CSR_CLKSOURCE_CORE (1u << 2)
#define CSR_COUNTFLAG (1u << 16)

#define RELOAD 0x00FFFFFFu /* SysTick is a 24-bit down-counter */
#define LOOP_INSTRUCTIONS_PER_ITERATION 2u /* SUBS + BNE */
#define SHORT_LOOP 250000u
#define LONG_LOOP 1250000u

static uint32_t start_value;

/* Exactly LOOP_INSTRUCTIONS_PER_ITERATION * iterations instructions in its loop. */
__attribute__((noinline)) static void known_loop(uint32_t iterations) {
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(iterations) : : "cc");
}

void instructions_start(void) {
    /* Writing the current value restarts the count from RELOAD and clears COUNTFLAG. */
    SYST_CVR = 0;
    (void)SYST_CSR;
    start_value = SYST_CVR;
    __asm volatile("" ::: "memory");
}

/* SysTick ticks since instructions_start, or -1 when the counter wrapped. */
static int64_t ticks_since_start(void) {
    __asm volatile("" ::: "memory");
    uint32_t end = SYST_CVR;
    if (SYST_CSR & CSR_COUNTFLAG) {
        return -1;
    }
    /* A counter just cleared reads 0 until its next tick reloads it. */
    uint32_t start = start_value == 0 ? RELOAD + 1 : start_value;
    return (int64_t)(start - end);
}

int instructions_calibrate(calibration *out) {
    SYST_CSR = 0;
    SYST_RVR = RELOAD;
    SYST_CVR = 0;
    SYST_CSR = CSR_CLKSOURCE_CORE | CSR_ENABLE;
    instructions_start();
    known_loop(SHORT_LOOP);
    int64_t short_ticks = ticks_since_start();
    instructions_start();
    known_loop(LONG_LOOP);
    int64_t long_ticks = ticks_since_start();
    if (short_ticks < 0 || long_ticks <= short_ticks) {
        return -1;
    }
    out->instructions = (uint64_t)LOOP_INSTRUCTIONS_PER_ITERATION * (LONG_LOOP - SHORT_LOOP);
    out->ticks = (uint64_t)(long_ticks - short_ticks);
    return 0;
}

int64_t instructions_stop(const calibration *calibration) {
    int64_t ticks = ticks_since_start();
    if (ticks < 0) {
        return -1;
    }
    return (int64_t)((uint64_t)ticks * calibration->instructions / calibration->ticks);
}
