/* Flash and RAM in use, from the linker script's symbols, and the stack's high-water mark. */
#ifndef FOOTPRINT_H
#define FOOTPRINT_H

#include <stddef.h>

/* Bytes of flash the image occupies: vectors, code, read-only data, .data's initial values. */
size_t footprint_flash_used(void);
/* Bytes of RAM taken by .data and .bss. */
size_t footprint_ram_static(void);
/* Bytes of RAM reserved for newlib's heap (its stdio buffers). */
size_t footprint_heap_reserved(void);
/* Fills the free stack with a known word; called once at reset, before main. */
void footprint_paint_stack(void);
/* Paints the free stack again, up to the caller's frame, so that the next footprint_stack_peak
 * measures only what runs after the call (the caller's frames included). */
void footprint_repaint_stack(void);
/* Most stack bytes used since reset or the last repaint: the lowest word that lost its paint. */
size_t footprint_stack_peak(void);

#endif
