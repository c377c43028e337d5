//! What the tests that host a server in their own process share (`remote`, `served_views`,
//! `serve_security`): a server of a device of this process on a free loopback port, a token file,
//! and the choice that trains on the server.

use std::path::{Path, PathBuf};

use spreadout::device::DeviceChoice;
use spreadout::remote::{self, RemoteTarget, Secret};
use spreadout::serve::{Server, Via};

/// A server running in this process.
pub struct Served {
    /// Its address as a client on this machine dials it.
    pub address: String,
    /// Its token, and its key's pin when it serves TLS: what its token file holds.
    pub secret: Secret,
}

/// A server of `device` on a free loopback port, reached `via`, serving `clients` at once until
/// the process ends.
pub fn serve_here(via: &Via, device: DeviceChoice, clients: usize) -> Served {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), via, device, clients).unwrap();
    let address = server.client_address("127.0.0.1");
    let secret = Secret::generate(server.pin());
    let token = secret.token.clone();
    std::thread::spawn(move || server.serve(&token).unwrap());
    Served { address, secret }
}

/// `secret` written to `dir/name` as `spreadout serve` writes a token file.
pub fn token_file(dir: &Path, name: &str, secret: &Secret) -> PathBuf {
    let path = dir.join(name);
    remote::write_token(&path, secret, false).unwrap();
    path
}

/// The device served at `address`, with the token in `token_file`.
pub fn served(address: &str, token_file: &Path) -> DeviceChoice {
    DeviceChoice::Remote(RemoteTarget {
        address: address.to_owned(),
        token_file: Some(token_file.to_owned()),
    })
}
