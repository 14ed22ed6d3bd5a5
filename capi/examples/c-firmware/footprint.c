#include "footprint.h"

#include <stdint.h>

extern uint32_t __flash_start[], __flash_end[], __data_start[], __bss_end[];
extern uint32_t __heap_start[], __heap_end[], __stack_bottom[], __stack_top[];

#define PAINT 0xDEADBEEFu

size_t footprint_flash_used(void) {
    return (size_t)((uintptr_t)__flash_end - (uintptr_t)__flash_start);
}

size_t footprint_ram_static(void) {
    return (size_t)((uintptr_t)__bss_end - (uintptr_t)__data_start);
}

size_t footprint_heap_reserved(void) {
    return (size_t)((uintptr_t)__heap_end - (uintptr_t)__heap_start);
}

/* Paints every stack word from the bottom of the region up to `end`. Always inlined, so that
 * it has no frame of its own below the caller's stack pointer to paint over. */
static inline __attribute__((always_inline)) void paint_up_to(uintptr_t end) {
    for (volatile uint32_t *word = __stack_bottom; (uintptr_t)word < end; word++) {
        *word = PAINT;
    }
}

/* Painting stops 256 bytes below the current stack pointer, so the words of the reset handler
 * and of this call are left alone. */
void footprint_paint_stack(void) {
    uintptr_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    paint_up_to(sp - 256);
}

/* Paints up to 64 bytes below the stack pointer (the compiler may read it before this call's
 * prologue pushes registers there): the rest is free, as no interrupt is enabled. What runs
 * next (an inference) goes far deeper, so the words left alone never set its peak. */
void footprint_repaint_stack(void) {
    uintptr_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    paint_up_to(sp - 64);
}

size_t footprint_stack_peak(void) {
    const volatile uint32_t *word = __stack_bottom;
    while ((uintptr_t)word < (uintptr_t)__stack_top && *word == PAINT) {
        word++;
    }
    return (size_t)((uintptr_t)__stack_top - (uintptr_t)word);
}
