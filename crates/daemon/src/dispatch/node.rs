//! Host-wide figures: NODE_GET_MEMORY_STATS (`virsh nodememstats`),
//! NODE_GET_CPU_STATS (`virsh nodecpustats`), NODE_GET_FREE_MEMORY and
//! NODE_GET_CELLS_FREE_MEMORY (`virsh freecell`).
//!
//! The two statistics calls come in libvirt's two steps: `nparams = 0`
//! asks how many fields there are, the second call fetches them. The
//! free-memory calls are read from the same [`NodeMemory`] as the memory
//! statistics.

use migrated_core::driver::{CpuTimes, Driver, NodeMemory};
use migrated_core::flags::check_flags;
use migrated_proto::{
    NodeGetCellsFreeMemoryArgs, NodeGetCellsFreeMemoryRet, NodeGetCpuStats, NodeGetCpuStatsArgs,
    NodeGetCpuStatsRet, NodeGetFreeMemoryRet, NodeGetMemoryStats, NodeGetMemoryStatsArgs,
    NodeGetMemoryStatsRet, REMOTE_NODE_CPU_STATS_MAX, REMOTE_NODE_MAX_CELLS,
    REMOTE_NODE_MEMORY_STATS_MAX,
};
use migrated_rpc::WireError;

use crate::handler::Session;
use crate::wire::{rpc_error, to_wire_error};

type Result<T> = std::result::Result<T, WireError>;

/// `VIR_NODE_CPU_STATS_ALL_CPUS` and `VIR_NODE_MEMORY_STATS_ALL_CELLS`.
const ALL: i32 = -1;

fn err(e: migrated_core::Error) -> WireError {
    to_wire_error(&e)
}

fn invalid(operation: &'static str, reason: String) -> WireError {
    err(migrated_core::Error::InvalidArg { operation, reason })
}

fn driver(session: &Session) -> Result<std::sync::Arc<dyn Driver>> {
    Ok(session.driver()?.driver)
}

/// Answers the two-step protocol: the count for `nparams = 0`, else all
/// `fields`, which the caller must have asked for exactly.
fn two_step<T>(
    operation: &'static str,
    nparams: i32,
    max: usize,
    fields: Vec<T>,
) -> Result<(Vec<T>, i32)> {
    let count = i32::try_from(fields.len()).unwrap_or(i32::MAX);
    if usize::try_from(nparams).map_or(true, |n| n > max) {
        return Err(rpc_error("nparams too large"));
    }
    match nparams {
        0 => Ok((Vec::new(), count)),
        n if n == count => Ok((fields, count)),
        _ => Err(invalid(
            operation,
            format!("nparams in {operation} must be {count}"),
        )),
    }
}

/// NODE_GET_CPU_STATS: `kernel`, `user`, `idle`, `iowait` (ns) of one host
/// CPU or of all (`cpuNum = -1`).
///
/// # Errors
/// Unknown flags, a CPU the host does not have, a wrong `nparams`
/// (`VIR_ERR_INVALID_ARG`); the driver's error (the test driver has no
/// CPU statistics, as libvirt's).
pub async fn get_cpu_stats(
    session: &Session,
    a: NodeGetCpuStatsArgs,
) -> Result<NodeGetCpuStatsRet> {
    const OP: &str = "virNodeGetCPUStats";
    check_flags(OP, u64::from(a.flags), 0).map_err(err)?;
    let driver = driver(session)?;
    let cpu = match a.cpu_num {
        ALL => None,
        n => {
            let cpus = driver.node_info().await.map_err(err)?.cpus;
            match u32::try_from(n) {
                Ok(cpu) if n < cpus => Some(cpu),
                _ => return Err(invalid(OP, format!("invalid cpuNum {n} (0-{})", cpus - 1))),
            }
        }
    };
    let t: CpuTimes = driver.node_cpu_times(cpu).await.map_err(err)?;
    let fields = [
        ("kernel", t.kernel_ns),
        ("user", t.user_ns),
        ("idle", t.idle_ns),
        ("iowait", t.iowait_ns),
    ]
    .into_iter()
    .map(|(field, value)| NodeGetCpuStats {
        field: field.to_owned(),
        value,
    })
    .collect();
    let (params, nparams) = two_step(OP, a.nparams, REMOTE_NODE_CPU_STATS_MAX, fields)?;
    Ok(NodeGetCpuStatsRet { params, nparams })
}

/// NODE_GET_MEMORY_STATS: `total`, `free`, `buffers`, `cached` (KiB) of the
/// host, or `total` and `free` of one NUMA cell.
///
/// # Errors
/// Unknown flags, a cell the host does not have, a wrong `nparams`
/// (`VIR_ERR_INVALID_ARG`); the driver's error.
pub async fn get_memory_stats(
    session: &Session,
    a: NodeGetMemoryStatsArgs,
) -> Result<NodeGetMemoryStatsRet> {
    const OP: &str = "virNodeGetMemoryStats";
    check_flags(OP, u64::from(a.flags), 0).map_err(err)?;
    let mem: NodeMemory = driver(session)?.node_memory().await.map_err(err)?;
    let values: Vec<(&str, u64)> = match a.cell_num {
        ALL => vec![
            ("total", mem.total_kib),
            ("free", mem.free_kib),
            ("buffers", mem.buffers_kib),
            ("cached", mem.cached_kib),
        ],
        n => {
            let cell = usize::try_from(n)
                .ok()
                .and_then(|i| mem.cells.get(i))
                .ok_or_else(|| {
                    invalid(
                        OP,
                        format!(
                            "cellNum in {OP} must be less than or equal to {}",
                            mem.cells.len().saturating_sub(1)
                        ),
                    )
                })?;
            vec![("total", cell.total_kib), ("free", cell.free_kib)]
        }
    };
    let fields = values
        .into_iter()
        .map(|(field, value)| NodeGetMemoryStats {
            field: field.to_owned(),
            value,
        })
        .collect();
    let (params, nparams) = two_step(OP, a.nparams, REMOTE_NODE_MEMORY_STATS_MAX, fields)?;
    Ok(NodeGetMemoryStatsRet { params, nparams })
}

/// NODE_GET_FREE_MEMORY: the host's free memory in bytes.
///
/// # Errors
/// The driver's error.
pub async fn get_free_memory(session: &Session) -> Result<NodeGetFreeMemoryRet> {
    let mem = driver(session)?.node_memory().await.map_err(err)?;
    Ok(NodeGetFreeMemoryRet {
        free_mem: mem.free_kib.saturating_mul(1024),
    })
}

/// NODE_GET_CELLS_FREE_MEMORY: free bytes of up to `maxcells` NUMA cells
/// from `startCell`.
///
/// # Errors
/// `maxcells` over the protocol's limit (`VIR_ERR_RPC`); a negative start
/// or a count below 1 (`VIR_ERR_INVALID_ARG`); a start past the last cell
/// (`VIR_ERR_INTERNAL_ERROR`, libvirt's); the driver's error.
pub async fn get_cells_free_memory(
    session: &Session,
    a: NodeGetCellsFreeMemoryArgs,
) -> Result<NodeGetCellsFreeMemoryRet> {
    const OP: &str = "virNodeGetCellsFreeMemory";
    if usize::try_from(a.maxcells).is_ok_and(|n| n > REMOTE_NODE_MAX_CELLS) {
        return Err(rpc_error("maxCells > REMOTE_NODE_MAX_CELLS"));
    }
    let (start, max) = match (usize::try_from(a.start_cell), usize::try_from(a.maxcells)) {
        (Ok(start), Ok(max)) if max >= 1 => (start, max),
        _ => {
            return Err(invalid(
                OP,
                "startCell must be at least 0 and maxcells at least 1".into(),
            ))
        }
    };
    let mem = driver(session)?.node_memory().await.map_err(err)?;
    if start >= mem.cells.len() {
        return Err(err(migrated_core::Error::internal(format!(
            "start cell {start} out of range (0-{})",
            mem.cells.len().saturating_sub(1)
        ))));
    }
    Ok(NodeGetCellsFreeMemoryRet {
        cells: mem.cells[start..]
            .iter()
            .take(max)
            .map(|c| c.free_kib.saturating_mul(1024))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_steps_count_then_fields() {
        assert_eq!(two_step("op", 0, 16, vec![1, 2]).ok(), Some((vec![], 2)));
        assert_eq!(
            two_step("op", 2, 16, vec![1, 2]).ok(),
            Some((vec![1, 2], 2))
        );
        assert_eq!(
            two_step("op", 1, 16, vec![1, 2]).err().map(|e| e.code),
            Some(8)
        );
        assert_eq!(
            two_step("op", 17, 16, vec![1, 2]).err().map(|e| e.code),
            Some(39)
        );
        assert_eq!(
            two_step("op", -1, 16, vec![1, 2]).err().map(|e| e.code),
            Some(39)
        );
    }
}
