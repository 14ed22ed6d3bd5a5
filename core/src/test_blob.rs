//! Describing small models in tests, writing them as blobs with the crate's own encoder, and
//! running them through the reference implementations.

use crate::format::{self, DataWriter, Header, Layer, Pool, QuantParams, Requant, Shape};
use crate::reference::{self, ChannelData};
use crate::shape::MapShape;
use crate::test_util::SplitMix;

#[derive(Clone, Debug)]
pub enum SpecLayer {
    /// `conv.input_zero_point` is the zero point of the layer's input.
    Conv2d {
        conv: reference::Conv,
        weights: Vec<i8>,
        data: ChannelData,
    },
    MaxPool2d {
        kernel: usize,
        stride: usize,
    },
    Flatten,
    Linear {
        weights: Vec<i8>,
        data: ChannelData,
    },
}

#[derive(Clone, Debug)]
pub struct Spec {
    pub input: MapShape,
    pub layers: Vec<SpecLayer>,
}

/// Scales written to blobs: arbitrary but valid.
const OUTPUT_SCALE: f32 = 0.05;
const WEIGHT_SCALE: f32 = 0.01;

impl Spec {
    /// The seed model's shapes (config.yaml) with random parameters.
    pub fn seed(rng: &mut SplitMix) -> Self {
        let mut spec = Spec::new(MapShape { c: 1, h: 28, w: 28 });
        spec.conv(rng, 8, (3, 1, 1), (1, 1), true);
        spec.conv(rng, 16, (3, 1, 1), (2, 2), true);
        spec.flatten();
        spec.linear(rng, 256, true);
        spec.linear(rng, 10, false);
        spec
    }

    /// A random valid architecture: up to three Conv2d/MaxPool2d layers, Flatten, 1–3 Linear.
    pub fn random(rng: &mut SplitMix) -> Self {
        let input = MapShape {
            c: rng.below(3) + 1,
            h: rng.below(10) + 3,
            w: rng.below(10) + 3,
        };
        let mut spec = Spec::new(input);
        for _ in 0..rng.below(4) {
            if rng.below(4) == 0 {
                let (kernel, stride) = (rng.below(2) + 1, rng.below(2) + 1);
                if reference::pooled(spec.map(), kernel, stride).is_some() {
                    spec.layers.push(SpecLayer::MaxPool2d { kernel, stride });
                }
            } else {
                let (kernel, stride, padding) =
                    ([1, 3, 5][rng.below(3)], rng.below(2) + 1, rng.below(3));
                let pool = [(1, 1), (2, 2), (rng.below(3) + 1, rng.below(2) + 1)][rng.below(3)];
                let conv = reference::Conv {
                    kernel,
                    stride,
                    padding,
                    pool,
                    input_zero_point: 0,
                };
                if conv.output(spec.map(), 1).is_some() {
                    let (out, relu) = (rng.below(6) + 1, rng.below(4) != 0);
                    spec.conv(rng, out, (kernel, stride, padding), pool, relu);
                }
            }
        }
        spec.flatten();
        for _ in 0..rng.below(3) {
            let (out, relu) = (rng.below(24) + 1, rng.below(2) == 0);
            spec.linear(rng, out, relu);
        }
        let out = rng.below(12) + 1;
        spec.linear(rng, out, false);
        spec
    }

    /// The map entering each layer, and the map or vector length leaving the last one.
    fn walk(&self) -> (Vec<MapShape>, usize) {
        let mut map = self.input;
        let mut len = map.c * map.h * map.w;
        let mut inputs = Vec::new();
        for layer in &self.layers {
            inputs.push(map);
            match layer {
                SpecLayer::Conv2d { conv, data, .. } => map = conv.output(map, data.len()).unwrap(),
                SpecLayer::MaxPool2d { kernel, stride } => {
                    map = reference::pooled(map, *kernel, *stride).unwrap()
                }
                SpecLayer::Flatten => {}
                SpecLayer::Linear { data, .. } => len = data.len(),
            }
            if !matches!(layer, SpecLayer::Linear { .. }) {
                len = map.c * map.h * map.w;
            }
        }
        (inputs, len)
    }

    fn map(&self) -> MapShape {
        let (inputs, _) = self.walk();
        match self.layers.last() {
            None => self.input,
            Some(SpecLayer::Conv2d { conv, data, .. }) => {
                conv.output(inputs[inputs.len() - 1], data.len()).unwrap()
            }
            Some(SpecLayer::MaxPool2d { kernel, stride }) => {
                reference::pooled(inputs[inputs.len() - 1], *kernel, *stride).unwrap()
            }
            Some(_) => panic!("no map after Flatten"),
        }
    }

    /// Zero point of the tensor the next layer receives.
    fn zero_point(&self) -> i8 {
        self.layers
            .iter()
            .rev()
            .find_map(|l| match l {
                SpecLayer::Conv2d { data, .. } | SpecLayer::Linear { data, .. } => {
                    Some(data.zero_point)
                }
                _ => None,
            })
            .unwrap_or(format::INPUT_ZERO_POINT)
    }

    pub fn new(input: MapShape) -> Self {
        Spec {
            input,
            layers: Vec::new(),
        }
    }

    /// Appends a Conv2d with `out` channels, `(kernel, stride, padding)`, a fused `pool`
    /// window (`(1, 1)` for none) and random weights.
    pub fn conv(
        &mut self,
        rng: &mut SplitMix,
        out: usize,
        (kernel, stride, padding): (usize, usize, usize),
        pool: (usize, usize),
        relu: bool,
    ) {
        let conv = reference::Conv {
            kernel,
            stride,
            padding,
            pool,
            input_zero_point: self.zero_point(),
        };
        let weights = rng.weights(out * self.map().c * kernel * kernel);
        let mut data = ChannelData::random(rng, out);
        data.relu = relu;
        self.layers.push(SpecLayer::Conv2d {
            conv,
            weights,
            data,
        });
    }

    pub fn flatten(&mut self) {
        self.layers.push(SpecLayer::Flatten);
    }

    pub fn linear(&mut self, rng: &mut SplitMix, out: usize, relu: bool) {
        let (_, in_features) = self.walk();
        let weights = rng.weights(out * in_features);
        let mut data = ChannelData::random(rng, out);
        data.relu = relu;
        self.layers.push(SpecLayer::Linear { weights, data });
    }

    /// The header and data section this spec encodes to.
    pub fn header_and_data(&self) -> (Header, Vec<u8>) {
        let capacity: usize =
            self.layers
                .iter()
                .map(|l| match l {
                    SpecLayer::Conv2d { weights, data, .. }
                    | SpecLayer::Linear { weights, data } => weights.len() + 16 * data.len() + 16,
                    _ => 0,
                })
                .sum();
        let mut buf = vec![0; capacity];
        let mut writer = DataWriter::new(&mut buf);
        let mut layers = heapless::Vec::new();
        let (inputs, _) = self.walk();
        for (layer, input) in self.layers.iter().zip(inputs) {
            let encoded = match layer {
                SpecLayer::Conv2d {
                    conv,
                    weights,
                    data,
                } => Layer::Conv2d(format::Conv2d {
                    in_channels: input.c as u16,
                    out_channels: data.len() as u16,
                    kernel: conv.kernel as u8,
                    stride: conv.stride as u8,
                    padding: conv.padding as u8,
                    relu: data.relu,
                    pool: (conv.pool != (1, 1)).then_some(Pool {
                        kernel: conv.pool.0 as u8,
                        stride: conv.pool.1 as u8,
                    }),
                    weights: writer.i8s(weights).unwrap(),
                    requant: requant(&mut writer, data),
                }),
                SpecLayer::MaxPool2d { kernel, stride } => Layer::MaxPool2d(Pool {
                    kernel: *kernel as u8,
                    stride: *stride as u8,
                }),
                SpecLayer::Flatten => Layer::Flatten,
                SpecLayer::Linear { weights, data } => Layer::Linear(format::Linear {
                    in_features: (weights.len() / data.len()) as u32,
                    out_features: data.len() as u32,
                    relu: data.relu,
                    weights: writer.i8s(weights).unwrap(),
                    requant: requant(&mut writer, data),
                }),
            };
            layers.push(encoded).unwrap();
        }
        let data = writer.data().to_vec();
        let input = Shape {
            c: self.input.c as u16,
            h: self.input.h as u16,
            w: self.input.w as u16,
        };
        (
            Header {
                input,
                layers,
                data_len: data.len() as u32,
            },
            data,
        )
    }

    pub fn to_blob(&self) -> Vec<u8> {
        let (header, data) = self.header_and_data();
        encode(&header, &data)
    }

    /// Runs the reference implementations layer by layer on a u8 image.
    pub fn reference(&self, image: &[u8]) -> Vec<i8> {
        let mut x: Vec<i8> = image.iter().map(|&p| (i16::from(p) - 128) as i8).collect();
        let mut map = self.input;
        for layer in &self.layers {
            match layer {
                SpecLayer::Conv2d {
                    conv,
                    weights,
                    data,
                } => (map, x) = reference::conv2d(map, &x, conv, weights, data),
                SpecLayer::MaxPool2d { kernel, stride } => {
                    (map, x) = reference::maxpool2d(map, &x, *kernel, *stride)
                }
                SpecLayer::Flatten => {}
                SpecLayer::Linear { weights, data } => x = reference::linear(&x, weights, data),
            }
        }
        x
    }
}

fn requant(writer: &mut DataWriter<'_>, data: &ChannelData) -> Requant {
    Requant {
        bias: writer.i32s(&data.bias).unwrap(),
        multiplier: writer.i32s(&data.multiplier).unwrap(),
        shift: writer.i8s(&data.shift).unwrap(),
        output: QuantParams {
            scale: OUTPUT_SCALE,
            zero_point: data.zero_point,
        },
        weight_scales: writer.f32s(&vec![WEIGHT_SCALE; data.len()]).unwrap(),
    }
}

/// A blob via the crate's encoder.
pub fn encode(header: &Header, data: &[u8]) -> Vec<u8> {
    let mut blob = vec![0; format::encoded_len(header, data.len()).unwrap()];
    let n = format::encode(header, data, &mut blob).unwrap();
    assert_eq!(n, blob.len());
    blob
}

/// Recomputes the trailing checksum (the one the blob's version names, xxHash32 for an
/// unknown version) after a test edited the bytes before it.
pub fn fix_checksum(blob: &mut [u8]) {
    let body = blob.len() - format::CHECKSUM_LEN;
    let sum = format::expected_checksum(blob).unwrap_or_else(|| format::CHECKSUM.of(&blob[..body]));
    blob[body..].copy_from_slice(&sum.to_le_bytes());
}

/// `blob` as a blob of format `version` (same header and data, its checksum recomputed):
/// a version-3 blob as the version-1 blob `qcnn-quantize` wrote before, say.
pub fn with_version(blob: &[u8], version: u16) -> Vec<u8> {
    let mut blob = blob.to_vec();
    blob[4..6].copy_from_slice(&version.to_le_bytes());
    fix_checksum(&mut blob);
    blob
}
