//! One math library on every platform, so that a seed trains the same model on Linux, Windows and
//! macOS.
//!
//! Rust's `f32::exp`, `ln`, `powf`, `sin`… (and Burn's CPU backend, which computes the loss's
//! exponentials and logarithms with them) call the C library's functions of those names, and each
//! platform's rounds its last bits its own way: over a million inputs, glibc's and MinGW's
//! `expf`, `logf`, `powf` and `tanhf` each disagree somewhere, and one epoch of SGD carries such a
//! difference into a different model (kNN 25.3 % on Linux, 25.0 % on Windows under Wine, same
//! command and seed, before this module; the same weights, bit for bit, after it:
//! docs/platforms.md). Defining the C names here, with the
//! `libm` crate's implementations (musl's, in Rust), makes every Spreadout binary use these: the
//! linker resolves a call to a name the program defines itself before it looks in the C library.
//! The C libraries Spreadout links (libheif and its decoders) use them too.

/// `#[no_mangle]` C functions, each forwarding to `libm`'s function of the same name.
macro_rules! c_math {
    ($($name:ident($($arg:ident: $ty:ty),+) -> $ret:ty;)+) => {$(
        #[doc = concat!("The C library's `", stringify!($name), "`, from the `libm` crate.")]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name($($arg: $ty),+) -> $ret {
            libm::$name($($arg),+)
        }
    )+};
}

c_math! {
    expf(x: f32) -> f32;
    exp(x: f64) -> f64;
    exp2f(x: f32) -> f32;
    exp2(x: f64) -> f64;
    expm1f(x: f32) -> f32;
    expm1(x: f64) -> f64;
    logf(x: f32) -> f32;
    log(x: f64) -> f64;
    log2f(x: f32) -> f32;
    log2(x: f64) -> f64;
    log10f(x: f32) -> f32;
    log10(x: f64) -> f64;
    log1pf(x: f32) -> f32;
    log1p(x: f64) -> f64;
    powf(x: f32, y: f32) -> f32;
    pow(x: f64, y: f64) -> f64;
    sinf(x: f32) -> f32;
    sin(x: f64) -> f64;
    cosf(x: f32) -> f32;
    cos(x: f64) -> f64;
    tanf(x: f32) -> f32;
    tan(x: f64) -> f64;
    asinf(x: f32) -> f32;
    asin(x: f64) -> f64;
    acosf(x: f32) -> f32;
    acos(x: f64) -> f64;
    atanf(x: f32) -> f32;
    atan(x: f64) -> f64;
    atan2f(y: f32, x: f32) -> f32;
    atan2(y: f64, x: f64) -> f64;
    sinhf(x: f32) -> f32;
    sinh(x: f64) -> f64;
    coshf(x: f32) -> f32;
    cosh(x: f64) -> f64;
    tanhf(x: f32) -> f32;
    tanh(x: f64) -> f64;
    cbrtf(x: f32) -> f32;
    cbrt(x: f64) -> f64;
    hypotf(x: f32, y: f32) -> f32;
    hypot(x: f64, y: f64) -> f64;
    fmaf(x: f32, y: f32, z: f32) -> f32;
    fma(x: f64, y: f64, z: f64) -> f64;
}

#[cfg(test)]
mod tests {
    use std::hint::black_box;

    /// Rust's own functions reach these definitions, not the C library's: the results are the
    /// `libm` crate's to the bit, whatever the platform's C library would have said.
    #[test]
    fn rusts_math_is_the_libm_crates_on_every_platform() {
        for i in 0..100_000u32 {
            let x = black_box(-20.0 + 40.0 * i as f32 / 100_000.0);
            let positive = x.abs() + 1e-3;
            assert_eq!(x.exp().to_bits(), libm::expf(x).to_bits(), "exp {x}");
            assert_eq!(
                positive.ln().to_bits(),
                libm::logf(positive).to_bits(),
                "ln {x}"
            );
            assert_eq!(
                positive.powf(0.4545).to_bits(),
                libm::powf(positive, 0.4545).to_bits(),
                "powf {x}"
            );
            assert_eq!(x.tanh().to_bits(), libm::tanhf(x).to_bits(), "tanh {x}");
            let wide = f64::from(x);
            assert_eq!(wide.sin().to_bits(), libm::sin(wide).to_bits(), "sin {x}");
            assert_eq!(wide.exp().to_bits(), libm::exp(wide).to_bits(), "exp {x}");
        }
    }
}
