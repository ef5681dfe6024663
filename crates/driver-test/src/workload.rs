//! The guest "workload": a thread that keeps dirtying memory at a set rate, so
//! that live migration has something to converge against.
//!
//! It is configured per domain in the XML metadata:
//!
//! ```xml
//! <metadata>
//!   <migrated:workload xmlns:migrated="https://migrated.dev/xmlns/test/1"
//!                      dirty_pages_per_sec="5000" working_set_mib="16"/>
//! </metadata>
//! ```
//!
//! No element means an idle guest. The thread writes an increasing counter into
//! pages round-robin over the working set, so every write really changes the page.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use migrated_core::xml::{DomainDef, XmlError};
use migrated_core::{Error, Result};

use crate::memory::{GuestMemory, PAGE_SIZE};

/// XML namespace of the test driver's metadata.
pub const METADATA_NS: &str = "https://migrated.dev/xmlns/test/1";

/// Local name of the workload element in [`METADATA_NS`].
pub const WORKLOAD_ELEMENT: &str = "workload";

/// How often the thread wakes up to write its share of pages.
const TICK: Duration = Duration::from_millis(10);

/// Workload settings read from a domain definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Pages written per second before throttling.
    pub dirty_pages_per_sec: u64,
    /// Size of the region written, in pages (at least one).
    pub working_set_pages: u64,
}

impl WorkloadConfig {
    /// The workload of `def`, `None` for an idle guest.
    ///
    /// The working set defaults to, and is capped at, the guest's memory.
    ///
    /// # Errors
    /// [`Error::Xml`] (`VIR_ERR_XML_ERROR`) naming the attribute when a value is
    /// not a non-negative integer or an attribute is unknown.
    pub fn from_def(def: &DomainDef) -> Result<Option<Self>> {
        let Some(attrs) = def.metadata_element(METADATA_NS, WORKLOAD_ELEMENT) else {
            return Ok(None);
        };
        let memory_pages = (def.memory_kib * 1024).div_ceil(PAGE_SIZE as u64).max(1);
        let mut rate = 0;
        let mut working_set_pages = memory_pages;
        for (name, value) in &attrs {
            let parsed = value.parse::<u64>().map_err(|e| invalid(name, value, &e))?;
            match name.as_str() {
                "dirty_pages_per_sec" => rate = parsed,
                "working_set_mib" => {
                    working_set_pages = parsed.saturating_mul((1 << 20) / PAGE_SIZE as u64)
                }
                _ => {
                    return Err(XmlError::UnsupportedAttribute {
                        attr: name.clone(),
                        path: "metadata/migrated:workload".into(),
                    }
                    .into())
                }
            }
        }
        Ok(Some(Self {
            dirty_pages_per_sec: rate,
            working_set_pages: working_set_pages.clamp(1, memory_pages),
        }))
    }
}

fn invalid(name: &str, value: &str, reason: &dyn std::fmt::Display) -> Error {
    XmlError::InvalidValue {
        what: format!("attribute '{name}' on <metadata/migrated:workload>"),
        value: value.to_owned(),
        reason: reason.to_string(),
    }
    .into()
}

/// A running workload thread; stopping or dropping it stops the thread and waits
/// for it, so no page changes after [`Workload::stop`] returns.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Workload {
    pub(crate) fn start(
        memory: Arc<GuestMemory>,
        pages_per_sec: u64,
        working_set_pages: u64,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let working_set = usize::try_from(working_set_pages.min(memory.page_count()))
            .unwrap_or(usize::MAX)
            .max(1);
        let thread = std::thread::Builder::new()
            .name("test-guest-workload".into())
            .spawn({
                let stop = Arc::clone(&stop);
                move || run(&memory, &stop, pages_per_sec, working_set)
            })
            .map_err(|e| Error::system("spawn test guest workload thread", e))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits until it has written its last page.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            if thread.join().is_err() {
                tracing::error!("test guest workload thread panicked");
            }
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(memory: &GuestMemory, stop: &AtomicBool, pages_per_sec: u64, working_set: usize) {
    let mut counter: u64 = 0;
    // Fractional pages carried between ticks, so low rates still write.
    let mut budget = 0.0f64;
    let mut last = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(TICK);
        let now = Instant::now();
        let elapsed = now.duration_since(last).as_secs_f64();
        last = now;
        let speed = f64::from(100 - memory.throttle_percent().min(99)) / 100.0;
        budget += pages_per_sec as f64 * speed * elapsed;
        // Never catch up more than a second's worth after a stall.
        budget = budget.min(pages_per_sec as f64);
        while budget >= 1.0 && !stop.load(Ordering::Acquire) {
            budget -= 1.0;
            counter = counter.wrapping_add(1);
            let page = (counter % working_set as u64) as usize;
            let offset = (counter as usize % (PAGE_SIZE / 8)) * 8;
            memory.modify_page(page, |p| {
                p[offset..offset + 8].copy_from_slice(&counter.to_le_bytes())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def_with(metadata: &str) -> DomainDef {
        let xml = format!(
            "<domain type='test'><name>w</name><memory unit='MiB'>4</memory>{metadata}\
             <os><type>hvm</type></os></domain>"
        );
        DomainDef::parse(&xml).expect("test domain xml parses")
    }

    #[test]
    fn no_metadata_means_idle() {
        assert_eq!(WorkloadConfig::from_def(&def_with("")).expect("ok"), None);
    }

    #[test]
    fn workload_is_read_from_metadata_and_capped_at_memory() {
        let def = def_with(
            "<metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
             dirty_pages_per_sec='500' working_set_mib='2'/></metadata>",
        );
        let cfg = WorkloadConfig::from_def(&def)
            .expect("ok")
            .expect("present");
        assert_eq!(cfg.dirty_pages_per_sec, 500);
        assert_eq!(cfg.working_set_pages, 512);

        let def = def_with(
            "<metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
             dirty_pages_per_sec='1' working_set_mib='64'/></metadata>",
        );
        let cfg = WorkloadConfig::from_def(&def)
            .expect("ok")
            .expect("present");
        assert_eq!(
            cfg.working_set_pages, 1024,
            "4 MiB guest caps the working set"
        );
    }

    #[test]
    fn bad_workload_values_name_the_attribute() {
        let def = def_with(
            "<metadata><migrated:workload xmlns:migrated='https://migrated.dev/xmlns/test/1' \
             dirty_pages_per_sec='fast'/></metadata>",
        );
        let err = WorkloadConfig::from_def(&def).expect_err("not a number");
        assert_eq!(err.code(), migrated_core::error::ErrorCode::XmlError);
        let chain = format!(
            "{err}: {}",
            std::error::Error::source(&err).expect("xml cause")
        );
        assert!(chain.contains("dirty_pages_per_sec"), "{chain}");
    }

    #[test]
    fn workload_dirties_pages_and_stops_completely() {
        let mem = Arc::new(GuestMemory::new(64 * PAGE_SIZE as u64).expect("small"));
        let workload = mem.start_workload(5_000, 32).expect("thread starts");
        let deadline = Instant::now() + Duration::from_secs(5);
        while mem.dirty_count() < 32 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        workload.stop();
        let dirty = mem.take_dirty_pages();
        assert!(!dirty.is_empty(), "workload wrote pages");
        assert!(
            dirty.iter().all(|&p| p < 32),
            "only the working set is written"
        );
        let before = mem.checksum();
        std::thread::sleep(TICK * 3);
        assert_eq!(mem.checksum(), before, "nothing changes after stop");
        assert!(mem.take_dirty_pages().is_empty());
    }

    #[test]
    fn full_throttle_slows_the_workload_down() {
        let mem = Arc::new(GuestMemory::new(4096 * PAGE_SIZE as u64).expect("16 MiB"));
        mem.set_throttle_percent(200);
        assert_eq!(mem.throttle_percent(), 99, "clamped");
        let workload = mem.start_workload(10_000, 4096).expect("thread starts");
        std::thread::sleep(Duration::from_millis(200));
        workload.stop();
        // Unthrottled this would be ~2000 pages; at 1 % speed about 20.
        let written = mem.take_dirty_pages().len();
        assert!(written < 500, "throttled workload wrote {written} pages");
    }
}
