/* Reset and the vector table for the Cortex-M4 of qemu's mps2-an386: initialise .data and
 * .bss, paint the stack (for its high-water mark), turn on the FPU, run main, and exit qemu
 * through semihosting with main's status. */
#include <stdint.h>
#include <stdlib.h>

#include "footprint.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[];

int main(void);
void reset_handler(void);
/* newlib's semihosting (librdimon) opens stdin, stdout and stderr here. */
void initialise_monitor_handles(void);

static void fault_handler(void) {
    /* A fault ends the run with a failure rather than hanging qemu until its timeout. */
    _Exit(3);
}

/* The core's 16 exceptions; the firmware uses no device interrupt. */
__attribute__((section(".vectors"), used)) static void (*const vector_table[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    fault_handler, /* SVCall */
    fault_handler, /* DebugMonitor */
    0,
    fault_handler, /* PendSV */
    fault_handler, /* SysTick: never enabled as an interrupt */
};

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void reset_handler(void) {
    uint32_t *src = __data_load;
    for (uint32_t *dst = __data_start; dst < __data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = __bss_start; dst < __bss_end;) {
        *dst++ = 0;
    }
    footprint_paint_stack();
    /* CP10 and CP11 full access: the library is built for the hard-float ABI. */
    CPACR |= 0xFu << 20;
    __asm volatile("dsb\n isb" ::: "memory");
    initialise_monitor_handles();
    exit(main());
}
