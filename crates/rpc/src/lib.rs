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
//! ```ignore
//! let server = Server::new(ServerConfig::default(), Arc::new(MyDispatcher));
//! let listener = Listener::bind_tcp("127.0.0.1:16509").await?;
//! tokio::spawn({ let s = server.clone(); async move { s.serve(listener).await } });
//! // ... later
//! server.shutdown();
//! ```
//! The dispatcher gets `open_session(info, handle)` per connection,
//! `lookup(session, header)` per CALL (reject unknown procedures there;
//! `priority` calls bypass the per-client limit), `call(session, ctx,
//! payload)` on its own task, and `close_session`. Handlers push events with
//! [`ConnHandle::send_event`], open streams with [`CallContext::open_stream`]
//! before returning, and enable server keepalive with
//! [`ConnHandle::start_keepalive`].
//!
//! # Client in short
//! ```ignore
//! let tcp = transport::tcp::connect("127.0.0.1:16509").await?;
//! let client = RpcClient::new(tcp, ClientConfig::default());
//! let ret = client.call(REMOTE_PROGRAM, 1, 1, args).await?;
//! ```

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
