//! virsh's words for domain states and their reasons
//! (`tools/virsh-domain-monitor.c`: `virshDomainState*` enum tables).

/// virsh's name of a `virDomainState` value.
pub fn state_name(state: i32) -> &'static str {
    match state {
        0 => "no state",
        1 => "running",
        2 => "idle",
        3 => "paused",
        4 => "in shutdown",
        5 => "shut off",
        6 => "crashed",
        7 => "pmsuspended",
        _ => "unknown",
    }
}

/// virsh's name of a state reason (the meaning of `reason` depends on `state`).
pub fn reason_name(state: i32, reason: i32) -> &'static str {
    let table: &[&str] = match state {
        0 => &["unknown"],
        1 => &[
            "unknown",
            "booted",
            "migrated",
            "restored",
            "from snapshot",
            "unpaused",
            "migration canceled",
            "save canceled",
            "event wakeup",
            "crashed",
            "post-copy",
            "post-copy failed",
        ],
        2 => &["unknown"],
        3 => &[
            "unknown",
            "user",
            "migrating",
            "saving",
            "dumping",
            "I/O error",
            "watchdog",
            "from snapshot",
            "shutting down",
            "creating snapshot",
            "crashed",
            "starting up",
            "post-copy",
            "post-copy failed",
            "api error",
        ],
        4 => &["unknown", "user"],
        5 => &[
            "unknown",
            "shutdown",
            "destroyed",
            "crashed",
            "migrated",
            "saved",
            "failed",
            "from snapshot",
            "daemon",
        ],
        6 => &["unknown", "panicked"],
        7 => &["unknown"],
        _ => &[],
    };
    usize::try_from(reason)
        .ok()
        .and_then(|r| table.get(r))
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_states_and_reasons_have_virsh_names() {
        assert_eq!(state_name(1), "running");
        assert_eq!(state_name(5), "shut off");
        assert_eq!(reason_name(1, 1), "booted");
        assert_eq!(reason_name(3, 1), "user");
        assert_eq!(reason_name(5, 2), "destroyed");
        assert_eq!(reason_name(5, 4), "migrated");
    }

    #[test]
    fn out_of_range_values_are_unknown_not_a_panic() {
        assert_eq!(state_name(42), "unknown");
        assert_eq!(reason_name(1, -1), "unknown");
        assert_eq!(reason_name(1, 99), "unknown");
        assert_eq!(reason_name(99, 0), "unknown");
    }
}
