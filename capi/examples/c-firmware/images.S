/* The test images, raw u8, back to back: QCNN_IMAGES_PATH names the file (the build passes
 * it with -D). */
    .section .rodata.test_images, "a"
    .balign 4
    .global test_images
test_images:
    .incbin QCNN_IMAGES_PATH
    .global test_images_end
test_images_end:
