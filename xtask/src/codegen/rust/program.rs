//! Programs: procedure enum, metadata table, marker types, visitor and the
//! enum of decoded calls.

use std::fmt::Write as _;

use super::super::ast::{Decl, Procedure, Program, Shape, TypeSpec};
use super::super::naming::{self, ProgramNames};
use super::super::resolve::Wire;
use super::super::ParseError;
use super::{doc_or, Gen};

impl Gen<'_> {
    /// Rust type of a procedure's argument or result (`()` for void).
    fn payload_type(&mut self, name: Option<&String>, p: &Procedure) -> Result<String, ParseError> {
        let Some(n) = name else {
            return Ok("()".into());
        };
        let decl = Decl {
            ty: TypeSpec::Named(n.clone()),
            shape: Shape::Scalar,
            name: p.name.clone(),
            line: p.line,
            doc: None,
        };
        match self.syms.wire(self.file, &decl)? {
            Wire::Named(rust) => {
                self.used.insert(rust.clone());
                Ok(rust)
            }
            _ => Err(self.err(
                p.line,
                format!("{}: {n} must name a struct, union or enum", p.name),
            )),
        }
    }

    pub(super) fn program(&mut self, p: &Program) -> Result<(), ParseError> {
        let names: ProgramNames = naming::program_names(&p.name);
        let ProgramNames {
            procedure: penum,
            procedures: table,
            trait_name,
            procs,
            call,
            visitor,
        } = &names;
        if u32::try_from(p.number).is_err() || u32::try_from(p.version).is_err() {
            return Err(self.err(
                p.line,
                "program and version numbers must fit in an unsigned int",
            ));
        }
        struct P<'p> {
            src: &'p Procedure,
            variant: String,
            args: String,
            ret: String,
            event: bool,
        }
        let mut procs_out: Vec<P> = Vec::new();
        for pr in &p.procedures {
            let variant = naming::procedure_variant(&pr.name);
            if i32::try_from(pr.number).is_err() {
                return Err(self.err(
                    pr.line,
                    format!("{}: number does not fit in an int", pr.name),
                ));
            }
            if let Some(prev) = procs_out
                .iter()
                .find(|x| x.src.number == pr.number || x.variant == variant)
            {
                return Err(self.err(
                    pr.line,
                    format!(
                        "{} clashes with {} (number or Rust name)",
                        pr.name, prev.src.name
                    ),
                ));
            }
            let args = self.payload_type(pr.args.as_ref(), pr)?;
            let ret = self.payload_type(pr.ret.as_ref(), pr)?;
            let event = pr.annotations.iter().any(|a| a == "event");
            if event && pr.ret.is_some() {
                return Err(self.err(
                    pr.line,
                    format!("{}: an event has no reply; declare it void", pr.name),
                ));
            }
            procs_out.push(P {
                src: pr,
                variant,
                args,
                ret,
                event,
            });
        }
        let file = format!("{}.x", self.module);
        let b = &mut self.body;
        let _ = writeln!(
            b,
            "/// Program number of `{file}`.\npub const {}: u32 = {:#x};\n",
            p.name, p.number
        );
        let _ = writeln!(
            b,
            "/// Version of the program of `{file}`.\npub const {}: u32 = {};\n",
            p.version_name, p.version
        );

        // Procedure enum
        let _ = writeln!(b, "/// Procedures of `{}` (`{file}`).\n#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]\n#[repr(i32)]\npub enum {penum} {{", p.name);
        for x in &procs_out {
            doc_or(b, x.src.doc.as_ref(), &format!("`{}`", x.src.name));
            let _ = writeln!(b, "{} = {},", x.variant, x.src.number);
        }
        let _ = writeln!(b, "}}\n");
        let all: Vec<String> = procs_out
            .iter()
            .map(|x| format!("{penum}::{}", x.variant))
            .collect();
        let _ = writeln!(b, "impl {penum} {{\n/// Every procedure, in declaration order.\npub const ALL: &'static [{penum}] = &[{}];", all.join(", "));
        let _ = writeln!(b, "/// The procedure numbered `number`, `None` for an unknown one.\npub fn from_i32(number: i32) -> Option<Self> {{\nmatch number {{");
        for x in &procs_out {
            let _ = writeln!(b, "{} => Some(Self::{}),", x.src.number, x.variant);
        }
        let _ = writeln!(b, "_ => None,\n}}\n}}");
        let _ = writeln!(b, "/// Metadata of this procedure.\npub fn info(self) -> &'static crate::ProcedureInfo {{\nmatch self {{");
        for (i, x) in procs_out.iter().enumerate() {
            let _ = writeln!(b, "Self::{} => &{table}[{i}],", x.variant);
        }
        let _ = writeln!(b, "}}\n}}");
        let _ = writeln!(b, "/// The procedure's name in the `.x` file, e.g. `{}`.\npub fn name(self) -> &'static str {{\nself.info().name\n}}",
            procs_out.first().map_or("", |x| x.src.name.as_str()));
        let _ = writeln!(
            b,
            "/// Runs `visitor` with this procedure's marker type from [`{procs}`]: generic code over\n\
             /// the payload types without a hand-written match.\n\
             pub fn visit<V: {visitor}>(self, visitor: V) -> V::Output {{\nmatch self {{"
        );
        for x in &procs_out {
            let _ = writeln!(
                b,
                "Self::{v} => visitor.visit::<{procs}::{v}>(),",
                v = x.variant
            );
        }
        let _ = writeln!(b, "}}\n}}\n}}\n");
        let _ = writeln!(
            b,
            "/// Generic code run for one procedure of `{}`; see [`{penum}::visit`].\npub trait {visitor} {{\n\
             /// What the visit returns.\ntype Output;\n\
             /// Called with the marker type of the visited procedure.\nfn visit<P: {trait_name}>(self) -> Self::Output;\n}}\n",
            p.name
        );
        let _ = writeln!(b, "impl From<{penum}> for i32 {{\nfn from(value: {penum}) -> i32 {{\nvalue as i32\n}}\n}}\n");
        let _ = writeln!(
            b,
            "/// Shows the `.x` name, for logs and error messages.\nimpl std::fmt::Display for {penum} {{\n\
             fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\nf.write_str(self.name())\n}}\n}}\n"
        );

        // Metadata table
        let _ = writeln!(b, "/// Metadata of every procedure of `{}`, in declaration order.\npub static {table}: &[crate::ProcedureInfo] = &[", p.name);
        for x in &procs_out {
            let has = |a: &str| x.src.annotations.iter().any(|y| y == a);
            let _ = writeln!(
                b,
                "crate::ProcedureInfo {{ number: {}, name: \"{}\", readonly: {}, priority: {}, event: {}, stream: {} }},",
                x.src.number,
                x.src.name,
                has("readonly"),
                has("priority"),
                has("event"),
                has("stream")
            );
        }
        let _ = writeln!(b, "];\n");

        // Trait and markers
        let _ = writeln!(
            b,
            "/// Ties a marker type of [`{procs}`] to its procedure and payload types.\npub trait {trait_name} {{\n\
             /// The procedure.\nconst PROC: {penum};\n\
             /// Payload of the CALL (of the MESSAGE for events); `()` when void.\ntype Args: serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static;\n\
             /// Payload of an OK REPLY; `()` when void.\ntype Ret: serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug + PartialEq + Send + Sync + 'static;\n}}\n"
        );
        let _ = writeln!(
            b,
            "/// One marker type per procedure of `{}`.\npub mod {procs} {{",
            p.name
        );
        for x in &procs_out {
            let path = |t: &str| {
                if t == "()" {
                    t.to_string()
                } else {
                    format!("super::{t}")
                }
            };
            let _ = writeln!(
                b,
                "/// `{}`.\n#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]\npub struct {v};\n\
                 impl super::{trait_name} for {v} {{\nconst PROC: super::{penum} = super::{penum}::{v};\ntype Args = {};\ntype Ret = {};\n}}\n",
                x.src.name,
                path(&x.args),
                path(&x.ret),
                v = x.variant
            );
        }
        let _ = writeln!(b, "}}\n");

        // Call enum (no events); programs made only of events get none.
        let calls: Vec<&P> = procs_out.iter().filter(|x| !x.event).collect();
        if calls.is_empty() {
            return Ok(());
        }
        let _ = writeln!(
            b,
            "/// A decoded CALL of `{}`: one variant per procedure that is not an event.\n\
             #[derive(Clone, Debug, PartialEq)]\n#[allow(clippy::large_enum_variant)] // built once per call, not stored in bulk\npub enum {call} {{",
            p.name
        );
        for x in &calls {
            let _ = writeln!(b, "/// `{}`.", x.src.name);
            if x.args == "()" {
                let _ = writeln!(b, "{},", x.variant);
            } else {
                let _ = writeln!(b, "{}({}),", x.variant, x.args);
            }
        }
        let _ = writeln!(b, "}}\n");
        let _ = writeln!(
            b,
            "impl {call} {{\n/// Decodes the payload of a CALL to `proc_`; the whole payload must be used.\n///\n\
             /// # Errors\n///\n/// A malformed payload, or `proc_` is an event (events are never calls).\n\
             pub fn decode(proc_: {penum}, payload: &[u8]) -> Result<{call}, migrated_xdr::Error> {{\nOk(match proc_ {{"
        );
        for x in &procs_out {
            if x.event {
                let _ = writeln!(
                    b,
                    "{penum}::{} => return Err(migrated_xdr::Error::Custom(format!(\"{{}} is an event, not a call\", proc_.name()))),",
                    x.variant
                );
            } else if x.args == "()" {
                let _ = writeln!(b, "{penum}::{v} => {{\nmigrated_xdr::from_bytes::<()>(payload)?;\n{call}::{v}\n}}", v = x.variant);
            } else {
                let _ = writeln!(
                    b,
                    "{penum}::{v} => {call}::{v}(migrated_xdr::from_bytes(payload)?),",
                    v = x.variant
                );
            }
        }
        let _ = writeln!(b, "}})\n}}\n");
        let _ = writeln!(b, "/// The procedure this call is for.\npub fn procedure(&self) -> {penum} {{\nmatch self {{");
        for x in &calls {
            let pat = if x.args == "()" {
                format!("{call}::{}", x.variant)
            } else {
                format!("{call}::{}(_)", x.variant)
            };
            let _ = writeln!(b, "{pat} => {penum}::{},", x.variant);
        }
        let _ = writeln!(b, "}}\n}}\n");
        let _ = writeln!(
            b,
            "/// Encodes the argument payload of this call.\n///\n/// # Errors\n///\n/// A bounded value is over its maximum.\n\
             pub fn encode(&self) -> Result<Vec<u8>, migrated_xdr::Error> {{\nmatch self {{"
        );
        for x in &calls {
            if x.args == "()" {
                let _ = writeln!(b, "{call}::{} => Ok(Vec::new()),", x.variant);
            } else {
                let _ = writeln!(
                    b,
                    "{call}::{}(args) => migrated_xdr::to_bytes(args),",
                    x.variant
                );
            }
        }
        let _ = writeln!(b, "}}\n}}\n}}\n");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{gen, has};

    #[test]
    fn programs_generate_enum_table_markers_and_calls() {
        let src = "struct remote_x_args { int a; };\nstruct remote_x_ret { int b; };\nstruct remote_ev_msg { int c; };\n\
            program REMOTE_PROGRAM {\n version REMOTE_PROTOCOL_VERSION {\n\
            remote_x_ret REMOTE_PROC_DO_X(remote_x_args) = 7; /* @readonly @priority */\n\
            void REMOTE_PROC_CLOSE(void) = 2;\n\
            void REMOTE_PROC_EV(remote_ev_msg) = 9; /* @event */\n\
            } = 1;\n} = 0x20008086;";
        let out = gen(&[("remote", src)]);
        let t = &out[0];
        for snippet in [
            "pub const REMOTE_PROGRAM: u32 = 0x20008086;",
            "pub const REMOTE_PROTOCOL_VERSION: u32 = 1;",
            "pub enum Procedure { /// `REMOTE_PROC_DO_X` DoX = 7,",
            "crate::ProcedureInfo { number: 7, name: \"REMOTE_PROC_DO_X\", readonly: true, priority: true, event: false, stream: false },",
            "crate::ProcedureInfo { number: 9, name: \"REMOTE_PROC_EV\", readonly: false, priority: false, event: true, stream: false },",
            "Self::DoX => &PROCEDURES[0],",
            "impl std::fmt::Display for Procedure {",
            "pub trait RemoteProcedure {",
            "pub mod procs {",
            "impl super::RemoteProcedure for DoX { const PROC: super::Procedure = super::Procedure::DoX; type Args = super::XArgs; type Ret = super::XRet; }",
            "impl super::RemoteProcedure for Close { const PROC: super::Procedure = super::Procedure::Close; type Args = (); type Ret = (); }",
            "pub enum Call { /// `REMOTE_PROC_DO_X`. DoX(XArgs), /// `REMOTE_PROC_CLOSE`. Close, }",
            "Procedure::DoX => Call::DoX(migrated_xdr::from_bytes(payload)?),",
            "Procedure::Close => { migrated_xdr::from_bytes::<()>(payload)?; Call::Close }",
            "Procedure::Ev => return Err(migrated_xdr::Error::Custom(format!(\"{} is an event, not a call\", proc_.name()))),",
            "Self::Ev => visitor.visit::<procs::Ev>(),",
            "pub trait ProcedureVisitor {",
        ] {
            assert!(has(t, snippet), "missing {snippet}\nin\n{t}");
        }
    }

    #[test]
    fn other_programs_get_prefixed_names_and_no_call_enum_without_calls() {
        let src = "program KEEPALIVE_PROGRAM { version KEEPALIVE_PROTOCOL_VERSION {\n\
            void KEEPALIVE_PROC_PING(void) = 1; /* @event */\n } = 1; } = 0x6b656570;";
        let t = &gen(&[("keepalive", src)])[0];
        assert!(has(
            t,
            "pub enum KeepaliveProcedure { /// `KEEPALIVE_PROC_PING` Ping = 1, }"
        ));
        assert!(has(
            t,
            "pub static KEEPALIVE_PROCEDURES: &[crate::ProcedureInfo]"
        ));
        assert!(has(t, "pub trait KeepaliveRpc {"));
        assert!(has(t, "pub mod keepalive_procs {"));
        assert!(!t.contains("KeepaliveCall"));
    }
}
