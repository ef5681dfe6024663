//! Bounded line reading for QMP.
//!
//! QMP is one JSON document per line. A QEMU that misbehaves (or anything
//! else listening on the socket) must not make the daemon buffer without
//! limit, so every line, including its newline, is capped; a longer line is
//! an error and the caller drops the connection.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Default cap on one QMP line: QEMU's largest replies (query-qmp-schema)
/// are a few hundred KiB.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// Why a line could not be read.
#[derive(Debug)]
pub(crate) enum LineError {
    /// More than `max` bytes without a newline.
    TooLong,
    /// The peer closed the socket in the middle of a line.
    Truncated,
    /// The socket failed.
    Io(std::io::Error),
}

/// Splits a byte stream into lines of at most `max` bytes.
pub(crate) struct LineReader<R> {
    inner: R,
    buf: BytesMut,
    /// Bytes at the front of `buf` already known to hold no newline.
    scanned: usize,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: BytesMut::with_capacity(8192),
            scanned: 0,
            max,
        }
    }

    /// The next line without its `\n` (and `\r`), or `None` at a clean end of stream.
    ///
    /// # Cancel safety
    /// Cancel safe: bytes already read stay in the buffer for the next call.
    pub(crate) async fn next_line(&mut self) -> Result<Option<BytesMut>, LineError> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + pos;
                if end + 1 > self.max {
                    return Err(LineError::TooLong);
                }
                let mut line = self.buf.split_to(end + 1);
                self.scanned = 0;
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                return Ok(Some(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() >= self.max {
                return Err(LineError::TooLong);
            }
            // Never read past the bound: at most `max - len` more bytes.
            let room = (self.max - self.buf.len()).min(64 * 1024);
            self.buf.reserve(room);
            let n = (&mut self.inner)
                .take(room as u64)
                .read_buf(&mut self.buf)
                .await
                .map_err(LineError::Io)?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    self.buf.advance(self.buf.len());
                    Err(LineError::Truncated)
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], max: usize) -> Vec<Result<Option<Vec<u8>>, String>> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            match reader.next_line().await {
                Ok(Some(line)) => out.push(Ok(Some(line.to_vec()))),
                Ok(None) => {
                    out.push(Ok(None));
                    return out;
                }
                Err(e) => {
                    out.push(Err(format!("{e:?}")));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_and_strips_crlf() {
        let got = lines_of(b"{\"a\":1}\r\n{\"b\":2}\n", 64).await;
        assert_eq!(
            got,
            vec![
                Ok(Some(b"{\"a\":1}".to_vec())),
                Ok(Some(b"{\"b\":2}".to_vec())),
                Ok(None)
            ]
        );
    }

    #[tokio::test]
    async fn line_of_exactly_max_bytes_is_accepted() {
        let mut input = vec![b'x'; 9];
        input.push(b'\n');
        let got = lines_of(&input, 10).await;
        assert_eq!(got[0], Ok(Some(vec![b'x'; 9])));
    }

    #[tokio::test]
    async fn line_over_max_is_refused() {
        let mut input = vec![b'x'; 10];
        input.push(b'\n');
        let got = lines_of(&input, 10).await;
        assert_eq!(got, vec![Err("TooLong".to_owned())]);
    }

    #[tokio::test]
    async fn endless_line_is_refused_without_reading_everything() {
        // A reader that never ends: the bound must stop us, not EOF.
        let endless = tokio::io::repeat(b'a');
        let mut reader = LineReader::new(endless, 4096);
        assert!(matches!(reader.next_line().await, Err(LineError::TooLong)));
        assert!(reader.buf.len() <= 4096);
    }

    #[tokio::test]
    async fn eof_inside_a_line_is_truncation() {
        let got = lines_of(b"{\"a\":1}\n{\"b\"", 64).await;
        assert_eq!(got[1], Err("Truncated".to_owned()));
    }
}
