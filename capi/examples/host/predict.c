/* qcnn from C on the host: `predict MODEL.qcnn IMAGES` runs the model on each image of the raw
 * u8 images file (back to back, qcnn_input_len bytes each) and prints `qcnn predict`'s line
 * for it. Exits 1 with a message naming the file on any error. */
#include <stdio.h>
#include <stdlib.h>

#include "print_prediction.h"
#include "qcnn.h"

/* The whole file in a malloc'd buffer (aligned for any type, so for QCNN_BLOB_ALIGN). */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return NULL;
    }
    unsigned char *bytes = NULL;
    long size = -1;
    if (fseek(file, 0, SEEK_END) == 0 && (size = ftell(file)) >= 0 &&
        fseek(file, 0, SEEK_SET) == 0) {
        bytes = malloc(size > 0 ? (size_t)size : 1);
        if (bytes != NULL && fread(bytes, 1, (size_t)size, file) != (size_t)size) {
            free(bytes);
            bytes = NULL;
        }
    }
    if (bytes == NULL) {
        fprintf(stderr, "%s: cannot be read\n", path);
    }
    fclose(file);
    *len = (size_t)size;
    return bytes;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.qcnn IMAGES\n", argv[0]);
        return 2;
    }
    size_t blob_len = 0, images_len = 0;
    unsigned char *blob = read_file(argv[1], &blob_len);
    unsigned char *images = read_file(argv[2], &images_len);
    if (blob == NULL || images == NULL) {
        return 1;
    }
    static qcnn_model model;
    qcnn_status status = qcnn_model_init(blob, blob_len, &model);
    if (status != QCNN_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], qcnn_error_str(status));
        return 1;
    }
    size_t input_len = 0, classes = 0, arena_len = 0;
    if ((status = qcnn_input_len(&model, &input_len)) != QCNN_OK ||
        (status = qcnn_num_classes(&model, &classes)) != QCNN_OK ||
        (status = qcnn_arena_len(&model, &arena_len)) != QCNN_OK) {
        fprintf(stderr, "%s: %s\n", argv[1], qcnn_error_str(status));
        return 1;
    }
    if (images_len % input_len != 0) {
        fprintf(stderr, "%s: %lu bytes is not a whole number of %lu-byte images\n", argv[2],
                (unsigned long)images_len, (unsigned long)input_len);
        return 1;
    }
    unsigned char *arena = malloc(arena_len);
    int8_t *logits = malloc(classes);
    if (arena == NULL || logits == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < images_len / input_len; i++) {
        size_t predicted = 0;
        status = qcnn_infer(&model, images + i * input_len, input_len, arena, arena_len,
                            logits, classes);
        if (status == QCNN_OK) {
            status = qcnn_argmax(logits, classes, &predicted);
        }
        if (status != QCNN_OK) {
            fprintf(stderr, "%s: image %lu: %s\n", argv[2], (unsigned long)i,
                    qcnn_error_str(status));
            return 1;
        }
        print_prediction(i, predicted, logits, classes);
    }
    free(logits);
    free(arena);
    free(images);
    free(blob);
    return 0;
}
