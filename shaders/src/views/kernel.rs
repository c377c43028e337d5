//! The views kernel itself: one cube per view, two passes over its pixels (the luma summed for
//! contrast, then every operation and the normalisation), written in CubeCL so it compiles to
//! WGSL, SPIR-V and MSL alike. Its Rust wrapper is the parent module.

use cubecl::prelude::*;

use super::{MAX_TAPS, UNITS, VIEW_FLOATS, VIEW_INTS};

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn views_kernel(
    sources: &[u32],
    ints: &[u32],
    floats: &[f32],
    tap_first: &[u32],
    tap_count: &[u32],
    tap_weights: &[f32],
    table: &[f32],
    output: &mut [f32],
    size: u32,
) {
    let view = CUBE_POS;
    let unit = UNIT_POS;
    let pixels = size * size;
    let source_offset = ints[view * VIEW_INTS];
    let stride = ints[view * VIEW_INTS + 1];
    let order = ints[view * VIEW_INTS + 2];
    let flags = ints[view * VIEW_INTS + 3];
    let jitter = (flags & 1) == 1;
    let grayscale = (flags & 2) == 2;
    let mut sums = Shared::<[f32]>::new_slice(UNITS as usize);
    let mut mean = 0.0f32;
    // Pass 0 sums the view's luma as it stands when contrast applies (only a jittered view needs
    // it); pass 1 applies every op in its order, grey, 8 bits and the normalisation. The passes'
    // barriers sit outside anything a view's draws decide: every unit of the cube reaches them.
    for pass in 0..2u32 {
        let mut partial = 0.0f32;
        for p in range_stepped(unit, pixels, UNITS) {
            if pass == 1 || jitter {
                let sampled = resample(
                    sources,
                    tap_first,
                    tap_count,
                    tap_weights,
                    view,
                    size,
                    source_offset,
                    stride,
                    p,
                );
                let mut r = sampled.red;
                let mut g = sampled.green;
                let mut b = sampled.blue;
                if jitter {
                    let jittered = jittered(floats, table, view, order, pass, mean, sampled);
                    r = jittered.red;
                    g = jittered.green;
                    b = jittered.blue;
                }
                if pass == 0 {
                    partial += luma(table, r, g, b);
                } else {
                    let pixel = Rgb {
                        red: r,
                        green: g,
                        blue: b,
                    };
                    write_pixel(output, table, view, pixels, p, grayscale, pixel);
                }
            }
        }
        if pass == 0 {
            sums[unit as usize] = partial;
            sync_cube();
            // Every unit adds the cube's partial sums in the same order, so all agree on the mean
            // (256 reads of shared memory each; a tree of in-place additions would do it in eight
            // steps, but CubeCL 0.11's IR verifier rejects a read-modify-write of shared memory
            // in a loop: "Expected operand type cube.ptr, but found builtin.integer").
            let mut total = 0.0f32;
            for k in 0..UNITS {
                total += sums[k as usize];
            }
            mean = total / f32::cast_from(pixels);
        }
    }
}

/// `pixel` through the view's colour jitter: brightness, contrast, saturation and hue (ops 0–3)
/// in the view's drawn `order`, each with its factor. Pass 0 stops before contrast, the op that
/// needs the `mean` luma that pass is summing.
#[cube]
fn jittered(
    floats: &[f32],
    table: &[f32],
    view: usize,
    order: u32,
    pass: u32,
    mean: f32,
    pixel: Rgb,
) -> Rgb {
    let mut r = pixel.red;
    let mut g = pixel.green;
    let mut b = pixel.blue;
    let mut stopped = false;
    for k in 0..4u32 {
        let op = (order >> (2 * k)) & 3;
        if op == 1 && pass == 0 {
            stopped = true;
        }
        if !stopped {
            let factor = floats[view * VIEW_FLOATS + op as usize];
            if op == 0 {
                r = unit_range(r * factor);
                g = unit_range(g * factor);
                b = unit_range(b * factor);
            } else if op == 1 {
                r = blend(r, mean, factor);
                g = blend(g, mean, factor);
                b = blend(b, mean, factor);
            } else if op == 2 {
                let gray = luma(table, r, g, b);
                r = blend(r, gray, factor);
                g = blend(g, gray, factor);
                b = blend(b, gray, factor);
            } else {
                let shifted = shifted_hue(r, g, b, factor);
                r = shifted.red;
                g = shifted.green;
                b = shifted.blue;
            }
        }
    }
    Rgb {
        red: r,
        green: g,
        blue: b,
    }
}

/// Writes `pixel`, output pixel `p` of `view`, to the view's three planes of `output`: grey
/// first when the view is, then to 8 bits and normalised.
#[cube]
fn write_pixel(
    output: &mut [f32],
    table: &[f32],
    view: usize,
    pixels: u32,
    p: u32,
    grayscale: bool,
    pixel: Rgb,
) {
    let mut r = pixel.red;
    let mut g = pixel.green;
    let mut b = pixel.blue;
    if grayscale {
        let gray = luma(table, r, g, b);
        r = gray;
        g = gray;
        b = gray;
    }
    let plane = pixels as usize;
    let at = view * 3 * plane + p as usize;
    output[at] = normalized(table, 0, r);
    output[at + plane] = normalized(table, 1, g);
    output[at + 2 * plane] = normalized(table, 2, b);
}

/// Byte `at` of the packed sources, as a value 0–255.
#[cube]
fn source_byte(sources: &[u32], at: u32) -> f32 {
    let word = sources[(at / 4) as usize];
    f32::cast_from((word >> ((at % 4) * 8)) & 255)
}

/// A pixel's three channels.
#[derive(CubeType)]
struct Rgb {
    red: f32,
    green: f32,
    blue: f32,
}

/// Output pixel `p` of `view` resampled from its source: the rows' taps summed first for each
/// source column, then the columns', in the CPU path's order (0–255 units, then to `[0, 1]`);
/// the three channels in one walk over the taps.
#[cube]
#[allow(clippy::too_many_arguments)]
fn resample(
    sources: &[u32],
    tap_first: &[u32],
    tap_count: &[u32],
    tap_weights: &[f32],
    view: usize,
    size: u32,
    source_offset: u32,
    stride: u32,
    p: u32,
) -> Rgb {
    let side = size as usize;
    let row = (view * 2) * side + (p / size) as usize;
    let column = (view * 2 + 1) * side + (p % size) as usize;
    let top = tap_first[row];
    let left = tap_first[column];
    let mut red = 0.0f32;
    let mut green = 0.0f32;
    let mut blue = 0.0f32;
    for i in 0..tap_count[column] {
        let across = tap_weights[column * MAX_TAPS + i as usize];
        let mut down_red = 0.0f32;
        let mut down_green = 0.0f32;
        let mut down_blue = 0.0f32;
        for j in 0..tap_count[row] {
            let down = tap_weights[row * MAX_TAPS + j as usize];
            let at = source_offset + (top + j) * stride + (left + i) * 3;
            down_red += down * source_byte(sources, at);
            down_green += down * source_byte(sources, at + 1);
            down_blue += down * source_byte(sources, at + 2);
        }
        red += across * down_red;
        green += across * down_green;
        blue += across * down_blue;
    }
    Rgb {
        red: unit_range(red / 255.0),
        green: unit_range(green / 255.0),
        blue: unit_range(blue / 255.0),
    }
}

/// `value` held to `[0, 1]`, as the CPU path's `clamp(0.0, 1.0)` (the same for every finite
/// value, which is all a view holds).
#[cube]
#[allow(clippy::manual_clamp)]
fn unit_range(value: f32) -> f32 {
    f32::min(f32::max(value, 0.0), 1.0)
}

#[cube]
fn luma(table: &[f32], r: f32, g: f32, b: f32) -> f32 {
    table[6] * r + table[7] * g + table[8] * b
}

/// torchvision's `_blend`: `factor` 1 keeps `value`, 0 gives `toward`, beyond 1 extrapolates.
#[cube]
fn blend(value: f32, toward: f32, factor: f32) -> f32 {
    unit_range(factor * value + (1.0 - factor) * toward)
}

/// An 8-bit value of `value` (rounded half up, as the CPU path), normalised for `channel`.
#[cube]
fn normalized(table: &[f32], channel: usize, value: f32) -> f32 {
    let byte = f32::floor(unit_range(value) * 255.0 + 0.5);
    byte * table[channel] + table[3 + channel]
}

/// The pixel with its hue shifted by `shift`: torchvision's `_rgb2hsv`, the shift with a
/// floor-based wrap, and `_hsv2rgb`.
#[cube]
fn shifted_hue(red: f32, green: f32, blue: f32, shift: f32) -> Rgb {
    let max = f32::max(red, f32::max(green, blue));
    let min = f32::min(red, f32::min(green, blue));
    let chroma = max - min;
    let mut hue = 0.0f32;
    let mut saturation = 0.0f32;
    if chroma != 0.0 {
        saturation = chroma / max;
        let red_distance = (max - red) / chroma;
        let green_distance = (max - green) / chroma;
        let blue_distance = (max - blue) / chroma;
        let mut sextant = 4.0 + green_distance - red_distance;
        if max == red {
            sextant = blue_distance - green_distance;
        } else if max == green {
            sextant = 2.0 + red_distance - blue_distance;
        }
        // Python's `% 1.0` of a positive value.
        let turns = sextant / 6.0 + 1.0;
        hue = turns - f32::floor(turns);
    }
    let value = max;
    let shifted = hue + shift;
    let wrapped = shifted - f32::floor(shifted);
    let scaled = wrapped * 6.0;
    let sextant = f32::floor(scaled);
    let fraction = scaled - sextant;
    let p = unit_range(value * (1.0 - saturation));
    let q = unit_range(value * (1.0 - saturation * fraction));
    let t = unit_range(value * (1.0 - saturation * (1.0 - fraction)));
    // A hue of exactly 1 wraps to the colour of 0. Sextant by sextant, (r, g, b) is
    // (v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q).
    let part = sextant - 6.0 * f32::floor(sextant / 6.0);
    let mut out_red = value;
    if part == 1.0 {
        out_red = q;
    } else if part == 2.0 || part == 3.0 {
        out_red = p;
    } else if part == 4.0 {
        out_red = t;
    }
    let mut out_green = p;
    if part == 0.0 {
        out_green = t;
    } else if part == 1.0 || part == 2.0 {
        out_green = value;
    } else if part == 3.0 {
        out_green = q;
    }
    let mut out_blue = p;
    if part == 2.0 {
        out_blue = t;
    } else if part == 3.0 || part == 4.0 {
        out_blue = value;
    } else if part == 5.0 {
        out_blue = q;
    }
    Rgb {
        red: out_red,
        green: out_green,
        blue: out_blue,
    }
}
