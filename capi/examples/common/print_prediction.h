/* The line `qcnn predict` prints for one image, shared by the firmware and the host example. */
#ifndef PRINT_PREDICTION_H
#define PRINT_PREDICTION_H

#include <stddef.h>
#include <stdint.h>

/* Prints `img <index> pred <class> logits <logit 0> ... <logit count-1>` and a newline. */
void print_prediction(size_t index, size_t predicted, const int8_t *logits, size_t count);

#endif
