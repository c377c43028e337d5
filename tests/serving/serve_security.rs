//! `spreadout serve` against strangers and against clients that are wrong: a flood of 1 000
//! unauthenticated connections, each starting a 100 MiB first frame, at the real binary over
//! plain TCP and over TLS, leaves its resident memory within 50 MiB of where it was and a client
//! with the token still served; a wrong token is refused over plain TCP, TLS and Iroh; a client
//! whose token file pins another key refuses the server before saying the token; another release
//! is named before anything is uploaded; a full server says it is busy and frees its place when
//! the client lets go of it; adversarial `spreadout.views` requests sent as a hostile client would
//! (the review's overflowing image, a kept tensor of bytes, a side of 60 000, a crop outside,
//! random numbers) are refused with errors, and the server goes on serving.
//!
//! In the `serving` test binary: a process that hosts a Burn server switches every read to Burn's
//! asynchronous runtime, which the tests of the `it` binary must not inherit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::backend::ops::FloatTensorOps;
use burn::backend::{DispatchDevice, Remote};
use burn::remote::CustomOpClient;
use burn::tensor::{DType, Int, Shape, Tensor, TensorData};
use burn_ir::{CustomOpIr, ScalarIr, TensorIr};
use rand::{Rng, SeedableRng};
use spreadout::augment::VIEWS_OP;
use spreadout::device::{self, DeviceChoice, DeviceError};
use spreadout::link::ServerKey;
use spreadout::remote::{RemoteError, Secret};
use spreadout::serve::Via;

use crate::server::{serve_here, served, token_file};

/// The remote error behind a device that could not be chosen.
fn remote_error(error: DeviceError) -> RemoteError {
    match error {
        DeviceError::Remote(error) => error,
        other => panic!("not a remote error: {other:?}"),
    }
}

/// `spreadout serve` of this build on a free loopback port, over TLS when `tls`, once it
/// listens; the child, its address and its token file.
fn start_server(dir: &Path, tls: bool) -> (Child, SocketAddr, std::path::PathBuf) {
    let address = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token = dir.join(if tls { "tls-token" } else { "plain-token" });
    let mut command = Command::new(env!("CARGO_BIN_EXE_spreadout"));
    command
        .args(["serve", "--device", "cpu", "--listen", &address.to_string()])
        .arg("--token-file")
        .arg(&token);
    if tls {
        command
            .arg("--tls")
            .arg("--tls-key")
            .arg(dir.join("tls.key"));
    }
    let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("serving ") {
            break;
        }
    }
    // Keep draining its log, so that a full pipe never stalls it.
    std::thread::spawn(move || lines.for_each(drop));
    (child, address, token)
}

/// The resident memory of process `pid`, in bytes.
fn resident(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib << 10
}

/// Opens `connections` connections to `address`, each starting a first frame of 100 MiB (over
/// TLS, a handshake record that declares it; over plain TCP, a line without its end) and sending
/// as much of it as the server takes; they stay open until dropped. Returns them and the bytes
/// they sent in all.
fn flood(address: SocketAddr, connections: usize, tls: bool) -> (Vec<TcpStream>, usize) {
    const FRAME: usize = 100 << 20;
    let mut chunk = vec![b'a'; 1 << 20];
    if tls {
        // A TLS handshake record header, then its body.
        chunk[..5].copy_from_slice(&[0x16, 0x03, 0x01, 0xff, 0xff]);
    }
    let mut streams = Vec::with_capacity(connections);
    let mut total = 0;
    for _ in 0..connections {
        let Ok(stream) = TcpStream::connect(address) else {
            continue;
        };
        stream.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while sent < FRAME {
            match (&stream).write(&chunk[..chunk.len().min(FRAME - sent)]) {
                Ok(0) | Err(_) => break,
                Ok(n) => sent += n,
            }
        }
        total += sent;
        streams.push(stream);
    }
    (streams, total)
}

/// The device at `address` with the token in `token`, served; panics naming what went wrong.
fn connect(address: &str, token: &Path) -> device::SelectedDevice {
    device::select(served(address, token)).unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn a_flood_of_strangers_leaves_the_server_small_and_serving() {
    let dir = tempfile::tempdir().unwrap();
    for tls in [false, true] {
        let (mut server, address, token) = start_server(dir.path(), tls);
        let url = format!("{}://{address}", if tls { "wss" } else { "ws" });
        // A first client, so that what serving a client allocates is in the baseline.
        drop(connect(&url, &token));
        std::thread::sleep(Duration::from_millis(500));
        let before = resident(server.id());
        let started = Instant::now();
        let (strangers, sent) = flood(address, 1000, tls);
        let during = resident(server.id());
        // A client with the token, while the strangers hang on.
        let client = connect(&url, &token);
        let link = client.remote.as_ref().unwrap();
        assert!(!link.served.is_empty());
        let after = resident(server.id());
        drop(strangers);
        eprintln!(
            "{url}: 1000 connections sent {} MiB in {:.1} s; resident {} MiB before, {} MiB during, {} MiB after",
            sent >> 20,
            started.elapsed().as_secs_f64(),
            before >> 20,
            during >> 20,
            after >> 20
        );
        for (when, bytes) in [("during", during), ("after", after)] {
            assert!(
                bytes < before + (50 << 20),
                "{url}: {} MiB {when} the flood, {} MiB before",
                bytes >> 20,
                before >> 20
            );
        }
        drop(client);
        server.kill().unwrap();
        server.wait().unwrap();
    }
    // Started again, as a person restarts it: the same key and token file, which the clients
    // already hold, still let them in.
    let (mut server, address, token) = start_server(dir.path(), true);
    drop(connect(&format!("wss://{address}"), &token));
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn a_wrong_token_is_refused_over_every_transport_and_the_right_one_served() {
    let dir = tempfile::tempdir().unwrap();
    for (name, via) in [
        ("plain", Via::Plain),
        (
            "tls",
            Via::Tls {
                key: dir.path().join("tls.key"),
            },
        ),
        (
            "iroh",
            Via::Iroh {
                identity: dir.path().join("iroh.key"),
            },
        ),
    ] {
        let server = serve_here(&via, DeviceChoice::Cpu, 1);
        let wrong = Secret {
            pin: server.secret.pin,
            ..Secret::generate(None)
        };
        let wrong = token_file(dir.path(), &format!("{name}-wrong"), &wrong);
        let error = remote_error(device::select(served(&server.address, &wrong)).unwrap_err());
        assert!(
            matches!(&error, RemoteError::Refused { .. }),
            "{name}: {error}"
        );
        assert!(error.to_string().contains(&server.address), "{error}");
        let right = token_file(dir.path(), &format!("{name}-right"), &server.secret);
        let client = connect(&server.address, &right);
        assert!(!client.remote.as_ref().unwrap().served.is_empty());
    }
}

#[test]
fn a_client_pinned_to_another_key_refuses_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_here(
        &Via::Tls {
            key: dir.path().join("tls.key"),
        },
        DeviceChoice::Cpu,
        1,
    );
    let other = ServerKey::load_or_create(&dir.path().join("other.key"))
        .unwrap()
        .pin();
    let pinned = Secret {
        pin: Some(other),
        ..server.secret.clone()
    };
    let token = token_file(dir.path(), "pinned-elsewhere", &pinned);
    let error = remote_error(device::select(served(&server.address, &token)).unwrap_err());
    let message = error.to_string();
    assert!(
        matches!(&error, RemoteError::Impostor { pinned, presented, .. }
            if *pinned == other && Some(*presented) == server.secret.pin),
        "{message}"
    );
    assert!(message.contains(&other.to_string()), "{message}");
    // Without a pin, a TLS address is refused before anything is dialled.
    let unpinned = Secret {
        pin: None,
        ..server.secret.clone()
    };
    let token = token_file(dir.path(), "unpinned", &unpinned);
    let error = remote_error(device::select(served(&server.address, &token)).unwrap_err());
    assert!(matches!(error, RemoteError::NoPin { .. }), "{error}");
}

#[test]
fn another_release_is_named_before_anything_is_uploaded() {
    let dir = tempfile::tempdir().unwrap();
    // The server names its release to a client with the token alone.
    let server = serve_here(&Via::Plain, DeviceChoice::Cpu, 1);
    let answer = |line: String| {
        let address = server.address.trim_start_matches("ws://");
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let token = &server.secret.token;
    assert_eq!(
        answer(format!("spreadout-link 1 0.0.1 {token}\n")),
        format!("version {}\n", env!("CARGO_PKG_VERSION"))
    );
    let stranger = Secret::generate(None).token;
    assert_eq!(
        answer(format!("spreadout-link 1 0.0.1 {stranger}\n")),
        "refused\n"
    );

    // A client told of another release stops there: the server hears its first line alone.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = fake.local_addr().unwrap();
    let heard = std::thread::spawn(move || {
        let (stream, _) = fake.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (&stream).write_all(b"version 9.9.9\n").unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        (line, rest)
    });
    let secret = Secret::generate(None);
    let token_path = token_file(dir.path(), "token", &secret);
    let error =
        remote_error(device::select(served(&format!("ws://{address}"), &token_path)).unwrap_err());
    assert!(
        matches!(&error, RemoteError::Version { server, .. } if server == "Spreadout 9.9.9"),
        "{error}"
    );
    let (line, rest) = heard.join().unwrap();
    assert!(line.starts_with("spreadout-link 1 "), "{line}");
    assert!(rest.is_empty(), "{} bytes after the first line", rest.len());
}

#[test]
fn a_full_server_says_it_is_busy_and_frees_the_place_when_its_client_lets_go() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_here(&Via::Plain, DeviceChoice::Cpu, 1);
    let token = token_file(dir.path(), "token", &server.secret);
    let first = connect(&server.address, &token);
    let error = remote_error(device::select(served(&server.address, &token)).unwrap_err());
    assert!(
        matches!(error, RemoteError::Busy { clients: 1, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--clients"), "{error}");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match device::select(served(&server.address, &token)) {
            Ok(_) => break,
            Err(DeviceError::Remote(RemoteError::Busy { .. })) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("{error}"),
        }
    }
}

/// The scalars of a `spreadout.views` request as the engine lays them out: the side, the
/// normalisation's scales and shifts, then per view its image's first byte, width and height, its
/// flags, its crop's box and its jitter's four factors.
fn views_request(side: u64, views: &[[u64; 8]]) -> Vec<ScalarIr> {
    let mut scalars = vec![ScalarIr::UInt(side)];
    scalars.extend([1.0, 1.0, 1.0, 0.0, 0.0, 0.0].map(ScalarIr::Float));
    for view in views {
        scalars.extend(view.map(ScalarIr::UInt));
        scalars.extend([1.0, 1.0, 1.0, 0.0].map(ScalarIr::Float));
    }
    scalars
}

/// The served device at `address`, waiting while the server still counts a client that has
/// just let go.
fn connect_when_free(address: &str, token: &Path) -> device::SelectedDevice {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match device::select(served(address, token)) {
            Ok(client) => return client,
            Err(DeviceError::Remote(RemoteError::Busy { .. })) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => panic!("{error}"),
        }
    }
}

/// Sends one `spreadout.views` request through `client`'s session, reading `kept` as the images
/// (64 bytes, of `kept`'s dtype), and reads its views back.
fn views_through(
    client: &device::SelectedDevice,
    kept: DType,
    side: usize,
    scalars: Vec<ScalarIr>,
) -> Result<TensorData, String> {
    let device = &client.device;
    let DispatchDevice::Remote(remote) = device.as_dispatch() else {
        panic!("a served device");
    };
    let ops = CustomOpClient::new(remote);
    let data = TensorData::from_bytes_vec(vec![7; 64], [64 / kept.size()], kept);
    let input = Tensor::<1, Int>::from_data(data, (device, kept))
        .try_into_primitive::<Remote>()
        .expect("a served tensor")
        .into_ir();
    let out = TensorIr::uninit(
        ops.create_empty_handle(),
        Shape::new([1, 3, side, side]),
        DType::F32,
    );
    let op = CustomOpIr::with_scalars(VIEWS_OP, &[input], &[out], scalars);
    let views = ops.register(op).remove(0);
    pollster::block_on(<Remote as FloatTensorOps<Remote>>::float_into_data(views))
        .map_err(|error| format!("{error:?}"))
}

#[test]
fn adversarial_views_requests_are_refused_with_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_here(&Via::Plain, DeviceChoice::Cpu, 1);
    let token = token_file(dir.path(), "token", &server.secret);
    // A 4×4 image at the start, the whole of it: what a correct request asks.
    let image = [0, 4, 4, 0, 0, 0, 0, 0];
    let correct = || views_request(4, &[image]);
    let mut refused = vec![
        // The review's pair: 3·w·h wraps to 26 in 64 bits.
        (
            "overflow",
            DType::I32,
            views_request(4, &[[0, 3062868337, 2007567422, 0, 0, 0, 0, 0]]),
        ),
        ("bytes", DType::U8, correct()),
        ("side", DType::I32, views_request(60000, &[image])),
        (
            "crop",
            DType::I32,
            views_request(4, &[[0, 4, 4, 1, 2, 2, 4, 4]]),
        ),
        (
            "past the end",
            DType::I32,
            views_request(4, &[[40, 4, 4, 0, 0, 0, 0, 0]]),
        ),
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(35);
    for _ in 0..20 {
        let scalars = (0..rng.random_range(0..40))
            .map(|_| match rng.random_range(0..4) {
                0 => ScalarIr::UInt(rng.random()),
                1 => ScalarIr::Int(rng.random()),
                2 => ScalarIr::Float(f64::from_bits(rng.random())),
                _ => ScalarIr::Bool(rng.random()),
            })
            .collect();
        refused.push(("random", DType::I32, scalars));
    }
    // Burn ends the session of a client whose read finds its refused views unwritten (the
    // handler refuses before anything is allocated or launched, and records why); the server
    // goes on, and each request here comes from a client of its own.
    for (what, kept, scalars) in refused {
        let client = connect_when_free(&server.address, &token);
        let error = views_through(&client, kept, 4, scalars).expect_err(what);
        assert!(!error.is_empty(), "{what}");
    }
    let client = connect_when_free(&server.address, &token);
    let views = views_through(&client, DType::I32, 4, correct()).unwrap();
    assert_eq!(views.num_elements(), 3 * 4 * 4);
}
