//! Iroh endpoints for the link: QUIC over UDP, encrypted, the server known by its key. Both ends
//! bind only what they are given, with no relays, no address lookup and no port mapping (Iroh
//! would otherwise ask the router by UPnP, NAT-PMP or PCP to open a public port), and a peer may
//! open one stream: the link's. Bytes a stranger can make the server hold before the token is
//! checked are then one stream's receive window.

use std::net::SocketAddr;

use iroh::endpoint::{BindOpts, PortmapperConfig, QuicTransportConfig, VarInt, presets};
use iroh::{Endpoint, RelayMode, SecretKey};

/// The application protocol both ends name in the QUIC handshake.
pub(super) const ALPN: &[u8] = b"spreadout-link/1";

/// An endpoint with `secret` on exactly `bind` (and, given `also`, that address too, when the
/// system has it: a client binds IPv4 and IPv6 so it can dial either).
pub(super) async fn endpoint(
    secret: SecretKey,
    bind: SocketAddr,
    also: Option<SocketAddr>,
    accept: bool,
) -> Result<Endpoint, String> {
    let transport = QuicTransportConfig::builder()
        .max_concurrent_bidi_streams(VarInt::from_u32(u32::from(accept)))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        // Iroh keeps sending segmented datagrams after the kernel refuses one, which stalls the
        // connection (iroh#4555); Burn turns it off for the same reason.
        .enable_segmentation_offload(false)
        .build();
    let mut builder = Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .portmapper_config(PortmapperConfig::Disabled)
        .secret_key(secret)
        .transport_config(transport)
        .clear_ip_transports()
        .bind_addr(bind)
        .map_err(|e| e.to_string())?;
    if accept {
        builder = builder.alpns(vec![ALPN.to_vec()]);
    }
    if let Some(also) = also {
        builder = builder
            .bind_addr_with_opts(also, BindOpts::default().set_is_required(false))
            .map_err(|e| e.to_string())?;
    }
    builder.bind().await.map_err(|e| e.to_string())
}
