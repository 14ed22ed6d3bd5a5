/* qcnn from C on a Cortex-M4 (qemu mps2-an386): runs the model of model_data.c (written by
 * `qcnn-quantize --emit-c`) on each embedded test image, prints `qcnn predict`'s line for it
 * over semihosting, then what it cost as `# <name> <value>` lines. Exits 0 when every image
 * ran, 1 on any error. */
#include <stdint.h>
#include <stdio.h>

#include "footprint.h"
#include "instructions.h"
#include "model_data.h"
#include "print_prediction.h"
#include "qcnn.h"

extern const uint8_t test_images[], test_images_end[];

/* In .bss, so that they count in the static RAM figure rather than on the stack. */
static qcnn_model model;
static uint8_t arena[QCNN_MODEL_ARENA_LEN];
#define MAX_CLASSES 64
static int8_t logits[MAX_CLASSES];

static int fail(const char *what, qcnn_status status) {
    printf("error: %s: %s (qcnn_status %ld)\n", what, qcnn_error_str(status), (long)status);
    return 1;
}

int main(void) {
    calibration clock;
    if (instructions_calibrate(&clock) != 0) {
        printf("error: SysTick does not count on this machine\n");
        return 1;
    }
    qcnn_status status = qcnn_model_init(qcnn_model_data, QCNN_MODEL_DATA_LEN, &model);
    if (status != QCNN_OK) {
        return fail("loading the embedded model", status);
    }
    size_t input_len = 0, classes = 0, arena_len = 0;
    if ((status = qcnn_input_len(&model, &input_len)) != QCNN_OK ||
        (status = qcnn_num_classes(&model, &classes)) != QCNN_OK ||
        (status = qcnn_arena_len(&model, &arena_len)) != QCNN_OK) {
        return fail("reading the model's sizes", status);
    }
    if (classes > MAX_CLASSES) {
        printf("error: the model has %lu classes, the firmware room for %d\n",
               (unsigned long)classes, MAX_CLASSES);
        return 1;
    }
    size_t images = (size_t)(test_images_end - test_images) / input_len;

    /* The load's peak (calibration and qcnn_model_init), then the stack painted again so that
     * the first inference's figure is its own, not the larger of the two. */
    size_t stack_at_load = footprint_stack_peak();
    footprint_repaint_stack();
    uint64_t total = 0, fewest = UINT64_MAX, most = 0;
    size_t stack_at_first_inference = 0;
    for (size_t i = 0; i < images; i++) {
        instructions_start();
        status = qcnn_infer(&model, test_images + i * input_len, input_len, arena,
                            sizeof arena, logits, MAX_CLASSES);
        int64_t instructions = instructions_stop(&clock);
        if (status != QCNN_OK) {
            printf("error: image %lu: %s\n", (unsigned long)i, qcnn_error_str(status));
            return 1;
        }
        if (instructions < 0) {
            printf("error: image %lu outran one SysTick period\n", (unsigned long)i);
            return 1;
        }
        if (i == 0) {
            /* Before anything is printed: only the inference used the stack since the repaint. */
            stack_at_first_inference = footprint_stack_peak();
        }
        size_t predicted = 0;
        if ((status = qcnn_argmax(logits, classes, &predicted)) != QCNN_OK) {
            return fail("argmax", status);
        }
        print_prediction(i, predicted, logits, classes);
        total += (uint64_t)instructions;
        fewest = (uint64_t)instructions < fewest ? (uint64_t)instructions : fewest;
        most = (uint64_t)instructions > most ? (uint64_t)instructions : most;
    }

    /* unsigned long: newlib-nano's printf has no long long; every figure fits 32 bits. */
    printf("# instructions_per_tick %lu/%lu (calibration loop: instructions/ticks)\n",
           (unsigned long)clock.instructions, (unsigned long)clock.ticks);
    printf("# instructions_per_inference %lu (mean of %lu images; min %lu, max %lu)\n",
           (unsigned long)(total / images), (unsigned long)images, (unsigned long)fewest,
           (unsigned long)most);
    size_t data = QCNN_MODEL_DATA_LEN + (size_t)(test_images_end - test_images);
    printf("# flash_total_bytes %lu\n", (unsigned long)footprint_flash_used());
    printf("# flash_code_bytes %lu (flash without the blob and the test images)\n",
           (unsigned long)(footprint_flash_used() - data));
    printf("# flash_blob_bytes %lu\n", (unsigned long)QCNN_MODEL_DATA_LEN);
    printf("# ram_static_bytes %lu (.data + .bss: arena, qcnn_model, C library)\n",
           (unsigned long)footprint_ram_static());
    printf("# ram_heap_reserved_bytes %lu (newlib's stdio buffers)\n",
           (unsigned long)footprint_heap_reserved());
    printf("# ram_arena_bytes %lu (qcnn_arena_len %lu)\n", (unsigned long)sizeof arena,
           (unsigned long)arena_len);
    printf("# ram_model_bytes %lu (sizeof(qcnn_model))\n", (unsigned long)sizeof model);
    printf("# stack_peak_load_bytes %lu (reset to the end of the load: calibration, qcnn_model_init)\n",
           (unsigned long)stack_at_load);
    printf("# stack_peak_inference_bytes %lu (the first inference alone: the stack painted again after the load)\n",
           (unsigned long)stack_at_first_inference);
    return 0;
}
