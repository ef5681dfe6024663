//! The test driver's migration stream: the same bytes over a direct TCP
//! connection or inside the daemon-to-daemon tunnel.
//!
//! ```text
//! header   "MIGDATA2" | page_size u32 | page_count u64            (big-endian)
//! frames   tag u8, then:
//!   1 PAGE      index u64 | 4096 raw bytes
//!   2 PAGE_LZ4  index u64 | len u32 | lz4 block (len < 4096)      (COMPRESSED)
//!   3 ZERO      index u64                                         (page is all zeros)
//!   4 ITERATION n u32                                             (a pre-copy pass ended)
//!   5 DEVICE    vcpus u32 | cpu_time_ns u64 | xml_len u32 | xml   (after the guest paused)
//!   6 END       memory digest [32] (see the `digest` module)
//! ```
//!
//! Everything from the peer is bounded before use: page indexes against the
//! header's count (itself checked against the incoming guest), compressed
//! lengths against a page, the XML against the domain XML limit. A stream that
//! ends before END is a failed transfer.

use migrated_core::xml::MAX_XML_BYTES;
use migrated_core::{Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use crate::memory::PAGE_SIZE;

/// Version 2: the END digest covers only pages holding data (version 1 hashed
/// every page), so a version-1 peer is refused at the header, not at END.
const MAGIC: &[u8; 8] = b"MIGDATA2";
const TAG_PAGE: u8 = 1;
const TAG_PAGE_LZ4: u8 = 2;
const TAG_ZERO: u8 = 3;
const TAG_ITERATION: u8 = 4;
const TAG_DEVICE: u8 = 5;
const TAG_END: u8 = 6;

/// Buffer size on both ends: big enough that one syscall carries many pages.
const BUFFER: usize = 256 * 1024;

/// A data-plane failure (`VIR_ERR_OPERATION_FAILED`, domain QEMU, as libvirt reports them).
pub(crate) fn failed(reason: impl Into<String>) -> Error {
    Error::OperationFailed {
        operation: "migration",
        reason: reason.into(),
    }
}

fn io_failed(what: &str, e: std::io::Error) -> Error {
    failed(format!("{what}: {e}"))
}

/// The device state sent once the guest is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceState {
    pub vcpus: u32,
    pub cpu_time_ns: u64,
    pub xml: String,
}

/// One decoded frame; page data lands in the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Page `index` now holds the buffer's content.
    Page { index: u64, wire_bytes: u64 },
    /// Page `index` is all zeros.
    Zero { index: u64 },
    /// Pre-copy pass `n` ended.
    Iteration { n: u32 },
    /// Device state.
    Device(DeviceState),
    /// End of stream with the memory checksum.
    End { checksum: [u8; 32] },
}

/// Writes frames; counts the bytes it produced.
pub(crate) struct FrameWriter<W: AsyncWrite + Unpin> {
    inner: BufWriter<W>,
    compress: bool,
    written: u64,
    compressed_pages: u64,
    compressed_bytes: u64,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Starts a stream for `page_count` pages.
    pub async fn start(out: W, page_count: u64, compress: bool) -> Result<Self> {
        let mut w = Self {
            inner: BufWriter::with_capacity(BUFFER, out),
            compress,
            written: 0,
            compressed_pages: 0,
            compressed_bytes: 0,
        };
        let mut header = Vec::with_capacity(20);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(PAGE_SIZE as u32).to_be_bytes());
        header.extend_from_slice(&page_count.to_be_bytes());
        w.put(&header).await?;
        Ok(w)
    }

    async fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner
            .write_all(bytes)
            .await
            .map_err(|e| io_failed("sending migration data", e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Bytes produced so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Pages and bytes sent compressed.
    pub fn compression(&self) -> (u64, u64) {
        (self.compressed_pages, self.compressed_bytes)
    }

    /// Sends page `index`; returns the bytes it took on the wire.
    pub async fn page(&mut self, index: u64, data: &[u8; PAGE_SIZE]) -> Result<u64> {
        let before = self.written;
        if self.compress {
            let packed = lz4_flex::block::compress(data);
            if packed.len() < PAGE_SIZE {
                let mut head = [0u8; 13];
                head[0] = TAG_PAGE_LZ4;
                head[1..9].copy_from_slice(&index.to_be_bytes());
                head[9..13].copy_from_slice(&(packed.len() as u32).to_be_bytes());
                self.put(&head).await?;
                self.put(&packed).await?;
                self.compressed_pages += 1;
                self.compressed_bytes += packed.len() as u64;
                return Ok(self.written - before);
            }
        }
        let mut head = [0u8; 9];
        head[0] = TAG_PAGE;
        head[1..9].copy_from_slice(&index.to_be_bytes());
        self.put(&head).await?;
        self.put(data).await?;
        Ok(self.written - before)
    }

    /// Says page `index` is zero.
    pub async fn zero(&mut self, index: u64) -> Result<u64> {
        let mut head = [0u8; 9];
        head[0] = TAG_ZERO;
        head[1..9].copy_from_slice(&index.to_be_bytes());
        self.put(&head).await?;
        Ok(9)
    }

    /// Marks the end of pre-copy pass `n`.
    pub async fn iteration(&mut self, n: u32) -> Result<()> {
        let mut f = [0u8; 5];
        f[0] = TAG_ITERATION;
        f[1..5].copy_from_slice(&n.to_be_bytes());
        self.put(&f).await
    }

    /// Sends the device state.
    pub async fn device(&mut self, state: &DeviceState) -> Result<()> {
        let xml = state.xml.as_bytes();
        let mut f = Vec::with_capacity(17 + xml.len());
        f.push(TAG_DEVICE);
        f.extend_from_slice(&state.vcpus.to_be_bytes());
        f.extend_from_slice(&state.cpu_time_ns.to_be_bytes());
        f.extend_from_slice(&(xml.len() as u32).to_be_bytes());
        f.extend_from_slice(xml);
        self.put(&f).await
    }

    /// Sends END and flushes and closes the sink.
    pub async fn end(mut self, checksum: [u8; 32]) -> Result<u64> {
        let mut f = [0u8; 33];
        f[0] = TAG_END;
        f[1..].copy_from_slice(&checksum);
        self.put(&f).await?;
        self.inner
            .shutdown()
            .await
            .map_err(|e| io_failed("closing the migration stream", e))?;
        Ok(self.written)
    }

    /// Flushes what is buffered (so the byte counters mean "handed to the transport").
    pub async fn flush(&mut self) -> Result<()> {
        self.inner
            .flush()
            .await
            .map_err(|e| io_failed("sending migration data", e))
    }
}

/// Reads and checks frames.
pub(crate) struct FrameReader<R: AsyncRead + Unpin> {
    inner: BufReader<R>,
    page_count: u64,
    read: u64,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads the header; the stream must be for exactly `expected_pages` pages.
    pub async fn start(input: R, expected_pages: u64) -> Result<Self> {
        let mut r = Self {
            inner: BufReader::with_capacity(BUFFER, input),
            page_count: expected_pages,
            read: 0,
        };
        let mut header = [0u8; 20];
        r.take(&mut header).await?;
        if &header[..8] != MAGIC {
            return Err(failed(
                "incoming data is not a migrated test-driver stream of this version (MIGDATA2)",
            ));
        }
        let page_size = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let mut count = [0u8; 8];
        count.copy_from_slice(&header[12..20]);
        let count = u64::from_be_bytes(count);
        if page_size as usize != PAGE_SIZE || count != expected_pages {
            return Err(failed(format!(
                "incoming stream has {count} pages of {page_size} bytes, the guest {expected_pages} of {PAGE_SIZE}"
            )));
        }
        Ok(r)
    }

    /// Bytes consumed so far.
    pub fn read_bytes(&self) -> u64 {
        self.read
    }

    async fn take(&mut self, buf: &mut [u8]) -> Result<()> {
        self.inner.read_exact(buf).await.map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                failed("migration stream ended before its end marker")
            } else {
                io_failed("receiving migration data", e)
            }
        })?;
        self.read += buf.len() as u64;
        Ok(())
    }

    async fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.take(&mut b).await?;
        Ok(u32::from_be_bytes(b))
    }

    async fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.take(&mut b).await?;
        Ok(u64::from_be_bytes(b))
    }

    async fn index(&mut self) -> Result<u64> {
        let index = self.u64().await?;
        if index >= self.page_count {
            return Err(failed(format!(
                "page {index} is outside guest memory of {} pages",
                self.page_count
            )));
        }
        Ok(index)
    }

    /// Reads to the end of the transport after END, so that a tunnel sees its
    /// clean close (the stream's finish) rather than a dropped reader.
    pub async fn expect_eof(&mut self) -> Result<()> {
        let mut byte = [0u8; 1];
        match self.inner.read(&mut byte).await {
            Ok(0) => Ok(()),
            Ok(_) => Err(failed("data after the migration stream's end marker")),
            Err(e) => Err(io_failed("closing the migration stream", e)),
        }
    }

    /// The next frame; PAGE data is decoded into `page`.
    pub async fn next(&mut self, page: &mut [u8; PAGE_SIZE]) -> Result<Frame> {
        let start = self.read;
        let mut tag = [0u8; 1];
        self.take(&mut tag).await?;
        match tag[0] {
            TAG_PAGE => {
                let index = self.index().await?;
                self.take(page).await?;
                Ok(Frame::Page {
                    index,
                    wire_bytes: self.read - start,
                })
            }
            TAG_PAGE_LZ4 => {
                let index = self.index().await?;
                let len = self.u32().await? as usize;
                if len >= PAGE_SIZE {
                    return Err(failed(format!("compressed page of {len} bytes")));
                }
                let mut packed = vec![0u8; len];
                self.take(&mut packed).await?;
                let n = lz4_flex::block::decompress_into(&packed, page)
                    .map_err(|e| failed(format!("bad compressed page {index}: {e}")))?;
                if n != PAGE_SIZE {
                    return Err(failed(format!(
                        "compressed page {index} expands to {n} bytes"
                    )));
                }
                Ok(Frame::Page {
                    index,
                    wire_bytes: self.read - start,
                })
            }
            TAG_ZERO => Ok(Frame::Zero {
                index: self.index().await?,
            }),
            TAG_ITERATION => Ok(Frame::Iteration {
                n: self.u32().await?,
            }),
            TAG_DEVICE => {
                let vcpus = self.u32().await?;
                let cpu_time_ns = self.u64().await?;
                let len = self.u32().await? as usize;
                if len > MAX_XML_BYTES {
                    return Err(failed(format!("device state XML of {len} bytes")));
                }
                let mut xml = vec![0u8; len];
                self.take(&mut xml).await?;
                let xml =
                    String::from_utf8(xml).map_err(|_| failed("device state XML is not UTF-8"))?;
                Ok(Frame::Device(DeviceState {
                    vcpus,
                    cpu_time_ns,
                    xml,
                }))
            }
            TAG_END => {
                let mut checksum = [0u8; 32];
                self.take(&mut checksum).await?;
                Ok(Frame::End { checksum })
            }
            other => Err(failed(format!("unknown migration frame type {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_with_and_without_compression() {
        for compress in [false, true] {
            let (a, b) = tokio::io::duplex(1 << 20);
            let mut page = [7u8; PAGE_SIZE];
            page[100] = 1;
            let mut noise = [0u8; PAGE_SIZE];
            // xorshift: incompressible enough that lz4 cannot shrink it.
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for b in noise.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = (x >> 24) as u8;
            }
            let state = DeviceState {
                vcpus: 2,
                cpu_time_ns: 5,
                xml: "<domain/>".into(),
            };
            let writer = tokio::spawn({
                let state = state.clone();
                async move {
                    let mut w = FrameWriter::start(a, 10, compress).await.expect("header");
                    w.page(3, &page).await.expect("page");
                    w.page(4, &noise).await.expect("page");
                    w.zero(9).await.expect("zero");
                    w.iteration(1).await.expect("iteration");
                    w.device(&state).await.expect("device");
                    let compressed = w.compression().0;
                    w.end([9; 32]).await.expect("end");
                    compressed
                }
            });
            let mut r = FrameReader::start(b, 10).await.expect("header");
            let mut buf = [0u8; PAGE_SIZE];
            assert!(matches!(
                r.next(&mut buf).await.expect("f"),
                Frame::Page { index: 3, .. }
            ));
            assert_eq!(buf, page);
            assert!(matches!(
                r.next(&mut buf).await.expect("f"),
                Frame::Page { index: 4, .. }
            ));
            assert_eq!(buf, noise);
            assert_eq!(r.next(&mut buf).await.expect("f"), Frame::Zero { index: 9 });
            assert_eq!(
                r.next(&mut buf).await.expect("f"),
                Frame::Iteration { n: 1 }
            );
            assert_eq!(r.next(&mut buf).await.expect("f"), Frame::Device(state));
            assert_eq!(
                r.next(&mut buf).await.expect("f"),
                Frame::End { checksum: [9; 32] }
            );
            let compressed = writer.await.expect("writer");
            assert_eq!(
                compressed,
                u64::from(compress),
                "only the repetitive page compresses"
            );
        }
    }

    #[tokio::test]
    async fn hostile_streams_are_errors_not_panics() {
        async fn feed(bytes: Vec<u8>, pages: u64) -> Result<()> {
            let mut r = FrameReader::start(&bytes[..], pages).await?;
            let mut buf = [0u8; PAGE_SIZE];
            loop {
                if let Frame::End { .. } = r.next(&mut buf).await? {
                    return Ok(());
                }
            }
        }
        let header = |pages: u64| {
            let mut h = MAGIC.to_vec();
            h.extend_from_slice(&(PAGE_SIZE as u32).to_be_bytes());
            h.extend_from_slice(&pages.to_be_bytes());
            h
        };
        assert!(feed(b"garbage".to_vec(), 1).await.is_err());
        assert!(feed(header(2), 3).await.is_err(), "page count mismatch");
        let mut out_of_range = header(2);
        out_of_range.push(TAG_ZERO);
        out_of_range.extend_from_slice(&5u64.to_be_bytes());
        assert!(feed(out_of_range, 2).await.is_err());
        let mut huge = header(2);
        huge.push(TAG_PAGE_LZ4);
        huge.extend_from_slice(&0u64.to_be_bytes());
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(feed(huge, 2).await.is_err());
        let mut bad_lz4 = header(2);
        bad_lz4.push(TAG_PAGE_LZ4);
        bad_lz4.extend_from_slice(&0u64.to_be_bytes());
        bad_lz4.extend_from_slice(&3u32.to_be_bytes());
        bad_lz4.extend_from_slice(&[0xff, 0xff, 0xff]);
        assert!(feed(bad_lz4, 2).await.is_err());
        let err = feed(header(2), 2).await.expect_err("no end marker");
        assert!(err.to_string().contains("end marker"), "{err}");
        let mut unknown = header(2);
        unknown.push(99);
        assert!(feed(unknown, 2).await.is_err());
    }
}
