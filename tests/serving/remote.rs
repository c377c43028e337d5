//! Training on a device another machine serves (`spreadout serve`), over loopback with the CPU
//! backend served: an epoch through the server, plain, over TLS and over Iroh without relays, with
//! the views built there from images kept there or sent as 8-bit batches, equals the same epoch
//! here; a step on kept images sends a small part of a batch's bytes; a wrong token is refused
//! with a message, a client killed mid-run
//! leaves the server serving the next one, and a server killed mid-run stops the run with its
//! checkpoint kept, which a resume against the restarted server finishes.
//!
//! In the `serving` test binary: a process that hosts a Burn server switches every read to Burn's
//! asynchronous runtime, which the tests of the `it` binary must not inherit.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use spreadout::device::{self, DeviceChoice, DeviceError};
use spreadout::lab::demo::DemoFolders;
use spreadout::remote::{RemoteError, RemoteTarget, Secret};
use spreadout::serve::Via;
use spreadout::tensor_files;
use spreadout::tensor_files::TensorValues;
use spreadout::train::{
    self, AugmentOn, Control, TrainConfig, TrainError, TrainEvent, TrainRequest,
};

use crate::common::{self, tiny_config, tiny_data};
use crate::server::{serve_here, served, token_file};

/// A fresh run of `config` on `device`, on the data and network of the other end-to-end tests.
fn request(
    folders: &DemoFolders,
    out: &Path,
    config: TrainConfig,
    device: DeviceChoice,
) -> TrainRequest {
    TrainRequest {
        device,
        ..common::request(folders, out, config)
    }
}

/// `config` with its views built on the served device, from the images kept there (a served CPU
/// builds them here unless asked).
fn kept_there(config: TrainConfig) -> TrainConfig {
    TrainConfig {
        augment_on: AugmentOn::Device,
        ..config
    }
}

/// The losses of each epoch a run recorded in its metrics.jsonl.
fn epoch_losses(run: &Path) -> Vec<f64> {
    train::read_metrics(run)
        .unwrap()
        .iter()
        .map(|epoch| epoch.loss)
        .collect()
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-3 * a.abs().max(b.abs()),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn an_epoch_through_the_server_equals_the_same_epoch_here() {
    let dir = tempfile::tempdir().unwrap();
    an_epoch_through(dir.path(), &Via::Plain, AugmentOn::Device);
}

#[test]
fn an_epoch_over_tls_equals_the_same_epoch_here() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("tls.key");
    an_epoch_through(dir.path(), &Via::Tls { key }, AugmentOn::Device);
}

#[test]
fn an_epoch_of_batches_sent_as_pixels_equals_the_same_epoch_here() {
    let dir = tempfile::tempdir().unwrap();
    an_epoch_through(dir.path(), &Via::Plain, AugmentOn::Auto);
}

#[test]
fn an_epoch_over_iroh_without_relays_equals_the_same_epoch_here() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("server.key");
    an_epoch_through(dir.path(), &Via::Iroh { identity }, AugmentOn::Device);
}

/// One epoch on this process's CPU and one through a server of it reached `via`, its views built
/// where `augment_on` says (`Device`: on the server, from the images kept there; `Auto`, the
/// server being a CPU: here, sent as 8-bit batches): the same losses and weights, within float
/// tolerance.
fn an_epoch_through(dir: &Path, via: &Via, augment_on: AugmentOn) {
    let folders = tiny_data(dir, 4, 12, 5);
    let server = serve_here(via, DeviceChoice::Cpu, 1);
    let address = server.address;
    let token = token_file(dir, "token", &server.secret);

    let local = dir.join("local");
    train::run(
        &request(&folders, &local, tiny_config(1, 8), DeviceChoice::Cpu),
        &Control::default(),
        &mut |_| {},
    )
    .unwrap();
    let through = dir.join("served");
    let mut started = None;
    train::run(
        &request(
            &folders,
            &through,
            TrainConfig {
                augment_on,
                ..tiny_config(1, 8)
            },
            served(&address, &token),
        ),
        &Control::default(),
        &mut |event| {
            if let TrainEvent::Started {
                device, views_on, ..
            } = event
            {
                started = Some((device, views_on));
            }
        },
    )
    .unwrap();
    let (started_on, views_on) = started.expect("the run started");
    assert!(
        started_on.contains(&format!("at {address}")),
        "{started_on}"
    );
    let expected = match augment_on {
        AugmentOn::Device => AugmentOn::Device,
        _ => AugmentOn::Cpu,
    };
    assert_eq!(views_on, expected);

    let (here, there) = (epoch_losses(&local), epoch_losses(&through));
    assert_eq!(here.len(), 1);
    assert_close(here[0], there[0], "epoch loss");
    let (a, _) = tensor_files::read_tensors(&local.join("model.safetensors")).unwrap();
    let (b, _) = tensor_files::read_tensors(&through.join("model.safetensors")).unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, tensor) in &a {
        if let (TensorValues::F32(x), TensorValues::F32(y)) = (&tensor.values, &b[name].values) {
            for (p, q) in x.iter().zip(y) {
                assert!(
                    (p - q).abs() <= 1e-3 * (1.0 + p.abs()),
                    "{name}: {p} vs {q}"
                );
            }
        }
    }
}

/// A step whose views the server builds from the images kept there sends their draws, not their
/// pixels: at 32 px, batch 16×2, the steps of a bench through the relay send at least three
/// quarters of the 8-bit batch (96 KiB) less than the same steps sending it.
#[test]
fn a_step_on_kept_images_sends_draws_rather_than_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_here(&Via::Plain, DeviceChoice::Cpu, 1);
    let address = server.address;
    let token = token_file(dir.path(), "token", &server.secret);
    let device = device::select(served(&address, &token)).unwrap();
    let sent = |augment_on: AugmentOn| {
        let case = spreadout::lab::bench::TrainingCase {
            width: 4,
            batch_size: 16,
            image_size: 32,
            precision: spreadout::model::Precision::F32,
            augment_on,
        };
        let row = spreadout::lab::bench::training(&device, case, 1, 2).unwrap();
        assert_eq!(
            row.detail.contains("kept there"),
            augment_on == AugmentOn::Device,
            "{}",
            row.detail
        );
        row.budget.unwrap().network.unwrap().sent_bytes
    };
    let (kept, batches) = (sent(AugmentOn::Device), sent(AugmentOn::Cpu));
    let batch = (2 * 16 * 3 * 32 * 32) as f64;
    assert!(
        batches - kept >= 0.75 * batch,
        "kept images: {kept} bytes per step, 8-bit batches: {batches}"
    );
}

#[test]
fn a_wrong_token_is_refused_naming_the_server_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let address = serve_here(&Via::Plain, DeviceChoice::Cpu, 1).address;
    let wrong = token_file(dir.path(), "wrong", &Secret::generate(None));
    let error = device::select(served(&address, &wrong)).unwrap_err();
    assert!(
        matches!(error, DeviceError::Remote(RemoteError::Refused { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&address), "{message}");
    assert!(message.contains(&wrong.display().to_string()), "{message}");
    // Without a token file, nothing is sent at all.
    let error = device::select(DeviceChoice::Remote(RemoteTarget {
        address,
        token_file: None,
    }))
    .unwrap_err();
    assert!(error.to_string().contains("--token-file"), "{error}");
}

/// `spreadout serve` of this build, on `address`, once it listens; its log lines come on the
/// receiver.
fn start_server(address: SocketAddr, token: &Path) -> (Child, Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spreadout"))
        .args([
            "serve",
            "--device",
            "cpu",
            "--listen",
            &address.to_string(),
            "--token-file",
        ])
        .arg(token)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("serving ") {
            break;
        }
    }
    // Keep draining its log, so that a full pipe never stalls it.
    let (log, logged) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = log.send(line);
        }
    });
    (child, logged)
}

/// Waits for a log line holding `text`.
fn wait_for(logged: &Receiver<String>, text: &str) {
    loop {
        let line = logged
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("the server never logged '{text}'"));
        if line.contains(text) {
            return;
        }
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_client_killed_mid_run_leaves_the_server_serving_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 4, 12, 5);
    let token = token_file(dir.path(), "token", &Secret::generate(None));
    let address = free_port();
    let (mut server, logged) = start_server(address, &token);
    let mut client = Command::new(env!("CARGO_BIN_EXE_spreadout"))
        .arg("train")
        .arg(&folders.train)
        .arg("--out")
        .arg(dir.path().join("killed"))
        .args([
            "--epochs",
            "50",
            "--batch-size",
            "8",
            "--image-size",
            "16",
            "--width",
            "4",
            "--augment-on",
            "device",
        ])
        .args(["--device", &format!("ws://{address}"), "--token-file"])
        .arg(&token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&logged, "client connected");
    // The client says "training on …" once its images are loaded and its steps begin; a step of
    // this network takes tens of milliseconds, so a second later it is well into them.
    let mut said = BufReader::new(client.stdout.take().unwrap()).lines();
    assert!(
        said.by_ref()
            .map_while(Result::ok)
            .any(|line| line.starts_with("training on")),
        "the client never started training"
    );
    // Its later lines drained, so that it is killed, not stopped by a closed pipe.
    std::thread::spawn(move || said.for_each(drop));
    std::thread::sleep(Duration::from_secs(1));
    client.kill().unwrap();
    client.wait().unwrap();

    let run = dir.path().join("next");
    let next = request(
        &folders,
        &run,
        kept_there(tiny_config(1, 8)),
        served(&format!("ws://{address}"), &token),
    );
    // The server frees the killed client's place once its connection's end reaches it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while let Err(error) = device::select(served(&format!("ws://{address}"), &token)) {
        assert!(
            matches!(error, DeviceError::Remote(RemoteError::Busy { .. }))
                && std::time::Instant::now() < deadline,
            "{error}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let summary = train::run(&next, &Control::default(), &mut |_| {}).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(summary.epochs_completed, 1);
}

#[test]
fn a_killed_server_stops_the_run_with_its_checkpoint_and_a_resume_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let folders = tiny_data(dir.path(), 4, 12, 5);
    let token = token_file(dir.path(), "token", &Secret::generate(None));
    let address = free_port();
    let run = dir.path().join("run");
    let (mut server, _) = start_server(address, &token);
    // Its images kept on the server, which the resume uploads again to the restarted one.
    let first = request(
        &folders,
        &run,
        kept_there(tiny_config(3, 8)),
        served(&format!("ws://{address}"), &token),
    );
    let error = train::run(&first, &Control::default(), &mut |event| {
        if let TrainEvent::Step {
            epoch: 2, step: 2, ..
        } = event
        {
            server.kill().unwrap();
            server.wait().unwrap();
        }
    })
    .unwrap_err();
    assert!(
        matches!(&error, TrainError::ServerLost { address: lost, .. } if *lost == format!("ws://{address}")),
        "{error:?}"
    );
    assert!(error.to_string().contains("resume"), "{error}");
    assert_eq!(epoch_losses(&run).len(), 1, "epoch 1 was kept");
    assert!(train::run_folder::checkpoint::path(&run).exists());

    let (mut server, _) = start_server(address, &token);
    let resumed = common::resumed_on(&run, first.device.clone());
    let summary = train::run(&resumed, &Control::default(), &mut |_| {}).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(summary.epochs_completed, 3);
    assert_eq!(epoch_losses(&run).len(), 3);
}
