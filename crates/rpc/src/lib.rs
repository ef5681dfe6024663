//! `migrated-rpc`: libvirt's RPC layer — bytes to messages and back.
//!
//! Layer: below the procedures. This crate knows the framing (self-counting
//! length word, 32 MiB limit), the 24-byte header, the `remote_error`
//! payload, the keepalive program, streams and the transports. It never
//! knows what a remote procedure means: the server asks a [`Dispatcher`]
//! (implemented by the daemon) to look up and run each CALL, and the client
//! moves opaque XDR payloads.
//!
//! | module | holds |
//! |---|---|
//! | [`codec`] | [`MessageCodec`]: frames ↔ bytes, size limits |
//! | [`header`] | [`Header`], [`Message`], [`MessageType`], [`MessageStatus`] |
//! | [`error`] | [`Error`], [`WireError`] (`remote_error`), libvirt error numbers |
//! | [`server`] | [`Server`], [`ServerConfig`], [`Dispatcher`], [`Lookup`], [`CallContext`], [`ConnHandle`], [`Listener`] |
//! | [`client`] | [`RpcClient`], [`ClientConfig`], [`ClientStream`] |
//! | [`keepalive`] | PING/PONG and the silence timer |
//! | [`stream`] | [`ServerStream`], [`StreamEvent`] |
//! | [`transport`] | tcp, unix, tls (rustls, libvirt's certificate layout and 0x01 byte) |
//!
//! # Server in short
//! ```no_run
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use migrated_rpc::server::REMOTE_PROGRAM;
//! use migrated_rpc::*;
//!
//! struct Echo;
//!
//! impl Dispatcher for Echo {
//!     type Session = ();
//!     // `programs()` defaults to the remote program, version 1.
//!     fn open_session(&self, _info: &ConnInfo, _handle: ConnHandle) {}
//!     fn lookup(&self, _s: &(), header: &Header) -> Lookup {
//!         match header.proc_ {
//!             1 => Lookup::Call { priority: false },
//!             n => Lookup::Reject(WireError::rpc(format!("unknown procedure: {n}"))),
//!         }
//!     }
//!     async fn call(&self, _s: Arc<()>, _ctx: CallContext, payload: Bytes) -> Result<Bytes, WireError> {
//!         Ok(payload)
//!     }
//! }
//!
//! # async fn demo() -> migrated_rpc::Result<()> {
//! let server = Server::new(ServerConfig::default(), Arc::new(Echo));
//! let listener = Listener::bind_tcp("127.0.0.1:0").await?;
//! let addr = listener.local_addr().expect("tcp listener");
//! let s = server.clone();
//! tokio::spawn(async move { s.serve(listener).await });
//!
//! let tcp = transport::tcp::connect(&addr.to_string()).await?;
//! let client = RpcClient::new(tcp, ClientConfig::default());
//! let ret = client.call(REMOTE_PROGRAM, 1, 1, b"abcd".to_vec()).await?;
//! assert_eq!(&ret[..], b"abcd");
//! server.shutdown(); // graceful: running calls finish, replies flush
//! # Ok(()) }
//! ```
//! The dispatcher gets `open_session(info, handle)` per connection,
//! `lookup(session, header)` per CALL on the reader task (reject unknown
//! procedures there; `priority` calls bypass the per-client limit),
//! `call(session, ctx, payload)` on its own task, and `close_session`.
//! Handlers push events with [`ConnHandle::send_event`], open streams with
//! [`CallContext::open_stream`] before returning, close a connection
//! gracefully with [`ConnHandle::close`], and enable server keepalive with
//! [`ConnHandle::start_keepalive`]. Protocol violations are answered by the
//! server itself (see [`server`]).
//!
//! # TLS
//! [`transport::tls::TlsAcceptor`] (server: client certificate required,
//! optional DN globs, the 0x01 byte) goes into [`Listener::Tls`];
//! [`transport::tls::TlsConnector::connect`] (client: libvirt's default
//! files or `pkipath`, `no_verify`, waits for 0x01) wraps any stream given
//! to [`RpcClient::new`]. [`transport::tls::check_certificate`] is the
//! start-up sanity check. Test certificates: `deploy/pki.sh`.

pub mod client;
pub mod codec;
pub mod error;
pub mod header;
pub mod keepalive;
mod outbound;
pub mod server;
pub mod stream;
pub mod transport;

pub use client::{ClientConfig, ClientStream, RpcClient};
pub use codec::MessageCodec;
pub use error::{Error, Result, WireError};
pub use header::{Header, Message, MessageStatus, MessageType};
pub use server::{
    CallContext, ConnHandle, ConnInfo, Dispatcher, Listener, Lookup, Server, ServerConfig,
    Transport,
};
pub use stream::{ServerStream, StreamEvent};
