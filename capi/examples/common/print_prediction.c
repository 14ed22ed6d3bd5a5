#include "print_prediction.h"

#include <stdio.h>

void print_prediction(size_t index, size_t predicted, const int8_t *logits, size_t count) {
    /* unsigned long rather than %zu: newlib-nano's printf may lack the z modifier. */
    printf("img %lu pred %lu logits", (unsigned long)index, (unsigned long)predicted);
    for (size_t i = 0; i < count; i++) {
        printf(" %d", logits[i]);
    }
    printf("\n");
}
