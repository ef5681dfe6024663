//! Byte transports: plain TCP, UNIX sockets and TLS (rustls).
//!
//! Everything above works on any `AsyncRead + AsyncWrite` stream; these
//! modules only create, tune and secure sockets.

pub mod tcp;
pub mod tls;
pub mod unix;
