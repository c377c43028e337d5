//! Serving this machine's device to Spreadout on other machines (`spreadout serve`): binding
//! exactly the address asked for, letting in only clients that present the token, answering the
//! handshake of `crate::remote`, and logging each client. The sessions themselves are Burn's
//! remote server (its WebSocket transport): the clients keep the autodiff graph and the run
//! folder, this machine runs the tensor operations.

use std::net::{SocketAddr, TcpListener};

use burn::backend::{Cube, Flex};
use burn::server::{
    AuthorizationRequest, PeerAuthorizer, RemoteServer, TokenAuthorizer, WebSocketTransport,
};

use crate::device::{self, DeviceChoice, DeviceError, SelectedDevice};
use crate::remote::{self, HELLO_OP};

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken or not this machine's.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The device cannot be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Serving another machine's device is not something a server does.
    #[error("a server serves this machine's own device, not another server's")]
    RemoteDevice,
    /// Burn's server failed.
    #[error("serving failed: {0}")]
    Serve(String),
}

/// A server bound to its address, with its device chosen, not yet serving.
pub struct Server {
    listener: TcpListener,
    selected: SelectedDevice,
    token: String,
}

impl Server {
    /// Binds `listen` (exactly that address: a loopback address serves this machine alone) and
    /// chooses `device` as `train --device` would. The token must not be empty
    /// (`remote::read_token` refuses one).
    ///
    /// # Errors
    /// The address cannot be bound, or the device cannot be used.
    pub fn bind(
        listen: SocketAddr,
        token: String,
        device: DeviceChoice,
    ) -> Result<Self, ServeError> {
        if matches!(device, DeviceChoice::Remote(_)) {
            return Err(ServeError::RemoteDevice);
        }
        let selected = device::select(device)?;
        let listener = TcpListener::bind(listen).map_err(|source| ServeError::Bind {
            address: listen,
            source,
        })?;
        Ok(Self {
            listener,
            selected,
            token,
        })
    }

    /// The address clients dial (the port the system chose, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The device served.
    pub fn device(&self) -> &SelectedDevice {
        &self.selected
    }

    /// Serves until the process receives Ctrl-C or SIGTERM. A client that disappears ends only its
    /// own session; the next client is served.
    ///
    /// # Errors
    /// Burn's server could not run.
    pub fn serve(self) -> Result<(), ServeError> {
        let served = match self.selected.compute() {
            Some(compute) => format!("{}, {}", self.selected.name, compute.summary()),
            None => self.selected.name.clone(),
        };
        let tokens = TokenAuthorizer::new(self.token.as_str())
            .map_err(|e| ServeError::Serve(e.to_string()))?;
        let server =
            RemoteServer::new([self.selected.device.clone()]).with_authorizer(Logged(tokens));
        // The handshake's custom operation is registered for the served backend alone: Burn
        // refuses a server holding operations of another backend.
        let server = if self.selected.is_wgpu {
            server.with_custom_op::<Cube, _>(HELLO_OP, remote::hello_handler::<Cube>(&served, true))
        } else {
            server
                .with_custom_op::<Flex, _>(HELLO_OP, remote::hello_handler::<Flex>(&served, false))
        };
        server
            .serve(WebSocketTransport::from_listener(self.listener))
            .map_err(|e| ServeError::Serve(e.to_string()))
    }
}

/// Whether `address` reaches beyond this machine, where the unencrypted transport needs a
/// trusted network or an SSH tunnel.
pub fn is_exposed(address: SocketAddr) -> bool {
    !address.ip().is_loopback()
}

/// The token check, with each client's session logged: who was let in, who was refused.
struct Logged(TokenAuthorizer);

impl PeerAuthorizer for Logged {
    fn authorize(&self, request: AuthorizationRequest<'_>) -> Result<(), String> {
        let client = request.client;
        let verdict = self.0.authorize(request);
        match &verdict {
            Ok(()) => tracing::info!("{client}: session opened"),
            Err(reason) => tracing::warn!("{client}: refused ({reason})"),
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_stay_on_this_machine() {
        assert!(!is_exposed("127.0.0.1:7800".parse().unwrap()));
        assert!(!is_exposed("[::1]:7800".parse().unwrap()));
        assert!(is_exposed("0.0.0.0:7800".parse().unwrap()));
        assert!(is_exposed("192.168.1.20:7800".parse().unwrap()));
    }

    #[test]
    fn a_taken_address_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let error = Server::bind(address, "t".into(), DeviceChoice::Cpu)
            .err()
            .expect("the port is taken");
        assert!(error.to_string().contains(&address.to_string()), "{error}");
    }
}
