//! qcnn on a Cortex-M: the embedded model and test images, and the instruments that measure
//! what inference costs there (instructions, flash, RAM, stack).
#![no_std]
#![deny(unsafe_code)]

pub mod embedded;
pub mod footprint;
pub mod instructions;
pub mod interrupts;
