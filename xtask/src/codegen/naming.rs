//! Mechanical mapping of `.x` names to Rust names.

/// Rust keywords a field name may collide with (escaped as raw identifiers).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "final", "fn", "for", "if", "impl", "in", "let", "loop", "macro", "match",
    "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "static", "struct", "trait",
    "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while",
    "yield",
];

/// `remote_domain_get_info_args` -> `DomainGetInfoArgs` (the `remote_` prefix is dropped).
pub fn type_name(xdr: &str) -> String {
    camel(xdr.strip_prefix("remote_").unwrap_or(xdr))
}

/// `SOME_WORDS` or `some_words` -> `SomeWords`.
pub fn camel(s: &str) -> String {
    s.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut c = lower.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `callbackID` -> `callback_id`, `nrVirtCpu` -> `nr_virt_cpu`; keywords become raw identifiers.
pub fn field_name(xdr: &str) -> String {
    let chars: Vec<char> = xdr.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    if KEYWORDS.contains(&out.as_str()) {
        format!("r#{out}")
    } else {
        out
    }
}

/// Strips the longest common `_`-separated prefix of `names`, keeping at
/// least one word of each and never leaving a name that starts with a digit,
/// then camel-cases what is left: `[VIR_NET_OK, VIR_NET_ERROR]` -> `[Ok, Error]`.
pub fn variant_names(names: &[&str]) -> Vec<String> {
    let split: Vec<Vec<&str>> = names.iter().map(|n| n.split('_').collect()).collect();
    let mut common = split
        .iter()
        .map(Vec::len)
        .min()
        .unwrap_or(0)
        .saturating_sub(1);
    for (k, word) in split
        .first()
        .map(|f| f.iter().enumerate())
        .into_iter()
        .flatten()
    {
        if k >= common || split.iter().any(|s| s.get(k) != Some(word)) {
            common = common.min(k);
            break;
        }
    }
    while common > 0
        && split
            .iter()
            .any(|s| s[common].chars().next().is_some_and(|c| c.is_ascii_digit()))
    {
        common -= 1;
    }
    split
        .iter()
        .map(|s| camel(&s[common..].join("_")))
        .collect()
}

/// `REMOTE_PROC_DOMAIN_GET_INFO` -> `DomainGetInfo` (everything up to `_PROC_` is dropped).
pub fn procedure_variant(xdr: &str) -> String {
    match xdr.find("_PROC_") {
        Some(i) => camel(&xdr[i + "_PROC_".len()..]),
        None => camel(xdr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_drop_remote_prefix() {
        assert_eq!(
            type_name("remote_domain_migrate_begin3_params_args"),
            "DomainMigrateBegin3ParamsArgs"
        );
        assert_eq!(type_name("net_message_error"), "NetMessageError");
        assert_eq!(type_name("nonnull_domain"), "NonnullDomain");
    }

    #[test]
    fn field_names_become_snake_case() {
        assert_eq!(field_name("callbackID"), "callback_id");
        assert_eq!(field_name("nrVirtCpu"), "nr_virt_cpu");
        assert_eq!(field_name("maxMem"), "max_mem");
        assert_eq!(field_name("cookie_in"), "cookie_in");
        assert_eq!(field_name("type"), "r#type");
        assert_eq!(field_name("HTTPServer"), "http_server");
    }

    #[test]
    fn variants_strip_common_prefix() {
        assert_eq!(
            variant_names(&["VIR_NET_CALL", "VIR_NET_CALL_WITH_FDS", "VIR_NET_OK"]),
            vec!["Call", "CallWithFds", "Ok"]
        );
        assert_eq!(variant_names(&["ONLY_ONE"]), vec!["One"]);
        assert_eq!(variant_names(&["X_2D", "X_3D"]), vec!["X2d", "X3d"]);
        assert_eq!(variant_names(&["A_B", "C_D"]), vec!["AB", "CD"]);
    }

    #[test]
    fn procedure_variants() {
        assert_eq!(procedure_variant("REMOTE_PROC_CONNECT_OPEN"), "ConnectOpen");
        assert_eq!(procedure_variant("KEEPALIVE_PROC_PING"), "Ping");
        assert_eq!(
            procedure_variant("REMOTE_PROC_DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS"),
            "DomainMigratePrepareTunnel3Params"
        );
    }
}

/// Rust names of the items generated for one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramNames {
    /// The `#[repr(i32)]` procedure enum.
    pub procedure: String,
    /// The static metadata table.
    pub procedures: String,
    /// The trait tying a marker type to its argument and result types.
    pub trait_name: String,
    /// The module of marker types.
    pub procs: String,
    /// The enum of decoded calls.
    pub call: String,
    /// The trait for generic per-procedure code (`Procedure::visit`).
    pub visitor: String,
}

/// Names for program constant `program` (e.g. `REMOTE_PROGRAM`). The remote
/// program gets the plain names of the architecture contract (`Procedure`,
/// `PROCEDURES`, `RemoteProcedure`, `procs`, `Call`, `ProcedureVisitor`); others are prefixed
/// with the program's name (`KeepaliveProcedure`, `KEEPALIVE_PROCEDURES`,
/// `KeepaliveRpc`, `keepalive_procs`, `KeepaliveCall`, `KeepaliveProcedureVisitor`).
pub fn program_names(program: &str) -> ProgramNames {
    let base = program.strip_suffix("_PROGRAM").unwrap_or(program);
    if base == "REMOTE" {
        return ProgramNames {
            procedure: "Procedure".into(),
            procedures: "PROCEDURES".into(),
            trait_name: "RemoteProcedure".into(),
            procs: "procs".into(),
            call: "Call".into(),
            visitor: "ProcedureVisitor".into(),
        };
    }
    let p = camel(base);
    ProgramNames {
        procedure: format!("{p}Procedure"),
        procedures: format!("{}_PROCEDURES", base.to_ascii_uppercase()),
        trait_name: format!("{p}Rpc"),
        procs: format!("{}_procs", base.to_ascii_lowercase()),
        call: format!("{p}Call"),
        visitor: format!("{p}ProcedureVisitor"),
    }
}
