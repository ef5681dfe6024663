//! The keepalive program (libvirt `virkeepaliveprotocol.x`, `virkeepalive.c`).
//!
//! Either side may send PING (a MESSAGE, serial 0, empty payload); the other
//! answers PONG. A side that enabled keepalive sends a PING only after
//! `interval` without *any* incoming packet, then one PING per interval, and
//! declares the peer dead after `count` unanswered PINGs. Both the server
//! connection and the client use [`run`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::header::{Header, Message, MessageStatus, MessageType};

/// Program number of the keepalive protocol ("keep").
pub const KEEPALIVE_PROGRAM: u32 = migrated_proto::KEEPALIVE_PROGRAM;
/// Version of the keepalive protocol.
pub const KEEPALIVE_VERSION: u32 = migrated_proto::KEEPALIVE_PROTOCOL_VERSION;
/// `KEEPALIVE_PROC_PING`.
pub const PROC_PING: i32 = migrated_proto::KeepaliveProcedure::Ping as i32;
/// `KEEPALIVE_PROC_PONG`.
pub const PROC_PONG: i32 = migrated_proto::KeepaliveProcedure::Pong as i32;

/// Builds a keepalive PING or PONG message.
pub fn message(proc_: i32) -> Message {
    Message::new(
        Header {
            prog: KEEPALIVE_PROGRAM,
            vers: KEEPALIVE_VERSION,
            proc_,
            type_: MessageType::Message,
            serial: 0,
            status: MessageStatus::Ok,
        },
        Bytes::new(),
    )
}

/// Whether `header` is a keepalive packet of procedure `proc_`.
pub fn is(header: &Header, proc_: i32) -> bool {
    header.prog == KEEPALIVE_PROGRAM
        && header.type_ == MessageType::Message
        && header.proc_ == proc_
}

/// Records when the peer was last heard from; shared by a reader and [`run`].
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    /// Notes that a packet arrived now.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Runs the keepalive timer until the peer is declared dead.
///
/// `send_ping` queues one PING and returns `false` when the connection is
/// already gone (then `run` returns `None`). Returns `Some(unanswered pings)`
/// when the peer is considered dead; the caller closes the connection.
///
/// # Cancel safety
/// Cancel-safe: it holds no state beyond its own timer.
pub async fn run(
    activity: &Activity,
    interval: Duration,
    count: u32,
    send_ping: impl Fn() -> bool,
) -> Option<u32> {
    let interval = interval.max(Duration::from_millis(1));
    let mut unanswered = 0u32;
    let mut last_seen = activity.last();
    let mut deadline = last_seen + interval;
    loop {
        tokio::time::sleep_until(deadline).await;
        let seen = activity.last();
        if seen > last_seen {
            last_seen = seen;
            unanswered = 0;
        }
        let now = Instant::now();
        if unanswered == 0 && now < last_seen + interval {
            deadline = last_seen + interval;
            continue;
        }
        if unanswered >= count {
            return Some(unanswered);
        }
        if !send_ping() {
            return None;
        }
        unanswered += 1;
        deadline = now + interval;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test(start_paused = true)]
    async fn silent_peer_is_dead_after_count_pings() {
        let activity = Activity::default();
        let pings = AtomicU32::new(0);
        let started = Instant::now();
        let n = run(&activity, Duration::from_secs(5), 3, || {
            pings.fetch_add(1, Ordering::Relaxed);
            true
        })
        .await;
        assert_eq!(n, Some(3));
        assert_eq!(pings.load(Ordering::Relaxed), 3);
        // first ping after 5 s of silence, then one per 5 s, dead 5 s after the last
        assert_eq!(started.elapsed(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn chatty_peer_is_never_pinged() {
        let activity = std::sync::Arc::new(Activity::default());
        let pings = std::sync::Arc::new(AtomicU32::new(0));
        let a = activity.clone();
        let p = pings.clone();
        let task = tokio::spawn(async move {
            run(&a, Duration::from_secs(5), 3, || {
                p.fetch_add(1, Ordering::Relaxed);
                true
            })
            .await
        });
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            activity.touch();
        }
        assert_eq!(pings.load(Ordering::Relaxed), 0);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn count_zero_closes_after_one_silent_interval_without_pinging() {
        let activity = Activity::default();
        let started = Instant::now();
        let n = run(&activity, Duration::from_secs(5), 0, || {
            panic!("must not ping")
        })
        .await;
        assert_eq!(n, Some(0));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn failing_to_queue_a_ping_reports_a_closed_connection() {
        let activity = Activity::default();
        assert_eq!(
            run(&activity, Duration::from_secs(5), 3, || false).await,
            None
        );
    }
}
