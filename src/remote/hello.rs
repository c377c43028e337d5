//! The handshake a client opens every session with: one custom operation ([`HELLO_OP`]) whose
//! answer says which Spreadout release the server runs, what it serves and whether that is a GPU,
//! so a client refuses another release by name before its first step.

use burn::backend::ops::FloatTensorOps;
use burn::backend::{DispatchDevice, Remote};
use burn::remote::CustomOpClient;
use burn::tensor::{DType, Device, Shape, TensorData};
use burn_ir::{BackendIr, CustomOpIr, HandleContainer, TensorIr};

/// The custom operation that answers a client's first question: which Spreadout serves, on what.
pub(crate) const HELLO_OP: &str = "spreadout.hello";
/// Floats in the hello's answer: the version's three numbers, 1 for a GPU (else 0), the largest
/// buffer in MiB, the description's length, then the description's UTF-8 bytes, one per float
/// (exact: every number is an integer below 2^24). The version leads and the length stays, so
/// that another release's answer still says which release it is.
const HELLO_LEN: usize = 260;
/// Floats before the description's bytes.
const HELLO_HEADER: usize = 6;
/// The largest buffer a hello can state, in MiB (2^24 − 1: 16 TiB, exact as an `f32`).
const MAX_BUFFER_MIB: u64 = (1 << 24) - 1;

/// Asks the server which release it runs and what it serves (the [`HELLO_OP`] custom operation,
/// one round trip).
pub(super) fn hello(device: &Device) -> Result<Hello, String> {
    let DispatchDevice::Remote(remote) = device.as_dispatch() else {
        return Err("not a served device".to_owned());
    };
    let client = CustomOpClient::new(remote);
    let output = TensorIr::uninit(
        client.create_empty_handle(),
        Shape::new([HELLO_LEN]),
        DType::F32,
    );
    let answer = client
        .register(CustomOpIr::new(HELLO_OP, &[], &[output]))
        .remove(0);
    let data = pollster::block_on(<Remote as FloatTensorOps<Remote>>::float_into_data(answer))
        .map_err(|e| format!("the handshake failed: {e:?}"))?;
    let words: Vec<f32> = data
        .try_to_vec::<f32>()
        .map_err(|e| format!("the handshake's answer is unreadable: {e:?}"))?;
    decode_hello(&words).ok_or_else(|| "the handshake's answer is malformed".to_owned())
}

/// What the server says of itself.
#[derive(Debug, PartialEq)]
pub(super) struct Hello {
    /// Its Spreadout release.
    pub version: String,
    /// The device it serves, in its own words.
    pub served: String,
    /// Whether that device is a GPU.
    pub gpu: bool,
    /// The largest buffer the device holds, in bytes (a whole number of MiB): the most images a
    /// run can keep there.
    pub max_buffer: u64,
}

/// The server's side of the handshake for backend `B`: this release's version, `served`,
/// whether it is a GPU, and its largest buffer in bytes.
pub(crate) fn hello_handler<B: BackendIr>(
    served: &str,
    gpu: bool,
    max_buffer: u64,
) -> impl Fn(&mut HandleContainer<B::Handle>, &CustomOpIr, &B::Device) + Send + Sync + 'static {
    let words = encode_hello(&Hello {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        served: served.to_owned(),
        gpu,
        max_buffer,
    });
    move |handles, op, device| {
        let answer = B::float_from_data(TensorData::new(words.clone(), [HELLO_LEN]), device);
        handles.register_float_tensor::<B>(&op.outputs[0].id, answer);
    }
}

fn encode_hello(hello: &Hello) -> Vec<f32> {
    let served = hello.served.as_str();
    let mut numbers = hello
        .version
        .split('.')
        .map(|n| n.parse::<f32>().unwrap_or(-1.0));
    let mut words: Vec<f32> = (0..3).map(|_| numbers.next().unwrap_or(0.0)).collect();
    words.push(if hello.gpu { 1.0 } else { 0.0 });
    words.push((hello.max_buffer >> 20).min(MAX_BUFFER_MIB) as f32);
    // Cut on a character boundary so the description stays valid UTF-8.
    let mut end = served.len().min(HELLO_LEN - HELLO_HEADER);
    while !served.is_char_boundary(end) {
        end -= 1;
    }
    words.push(end as f32);
    words.extend(served.as_bytes()[..end].iter().map(|&b| f32::from(b)));
    words.resize(HELLO_LEN, 0.0);
    words
}

fn decode_hello(words: &[f32]) -> Option<Hello> {
    if words.len() != HELLO_LEN {
        return None;
    }
    let version = words[..3]
        .iter()
        .map(|&n| (n as i64).to_string())
        .collect::<Vec<_>>()
        .join(".");
    let len = words[HELLO_HEADER - 1] as usize;
    let bytes: Vec<u8> = words
        .get(HELLO_HEADER..HELLO_HEADER + len)?
        .iter()
        .map(|&b| b as u8)
        .collect();
    Some(Hello {
        version,
        // Printed in terminals and shown in the app: a server's words must not carry escapes.
        served: super::printable(&String::from_utf8(bytes).ok()?),
        gpu: words[3] == 1.0,
        max_buffer: (words[4] as u64) << 20,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hello_carries_the_version_and_the_description() {
        let hello = Hello {
            version: "1.22.3".to_owned(),
            served: "NVIDIA H200 (Vulkan, discrete GPU) — ü".to_owned(),
            gpu: true,
            max_buffer: 2 << 30,
        };
        let words = encode_hello(&hello);
        assert_eq!(words.len(), HELLO_LEN);
        assert_eq!(decode_hello(&words).unwrap(), hello);
        // Too long a description is cut on a character boundary.
        let long = Hello {
            version: "0.1.0".to_owned(),
            served: "é".repeat(400),
            gpu: false,
            max_buffer: u64::MAX,
        };
        let cut = decode_hello(&encode_hello(&long)).unwrap();
        assert!(!cut.gpu && long.served.starts_with(&cut.served));
        // No limit is stated as the largest a hello carries.
        assert_eq!(cut.max_buffer, MAX_BUFFER_MIB << 20);
        assert!(cut.served.len() <= HELLO_LEN - HELLO_HEADER);
    }
}
