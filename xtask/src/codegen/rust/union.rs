//! Unions: a Rust enum with hand-made impls encoding `(discriminant, arm)`.

use std::fmt::Write as _;

use super::super::ast::{Decl, Shape, TypeSpec, UnionArm, Value};
use super::super::naming;
use super::super::resolve::SymKind;
use super::super::ParseError;
use super::codec::{de_parts, ser_expr, Codec};
use super::{doc, doc_or, Gen};

impl Gen<'_> {
    pub(super) fn union(
        &mut self,
        name: &str,
        disc: &Decl,
        arms: &[UnionArm],
        d: Option<&String>,
        line: usize,
    ) -> Result<(), ParseError> {
        let rust = naming::type_name(name);
        let disc_ok = match &disc.ty {
            TypeSpec::Int | TypeSpec::UInt | TypeSpec::Bool => true,
            TypeSpec::Named(n) => matches!(
                self.syms.by_name.get(n).map(|s| &s.kind),
                Some(SymKind::Type { is_enum: true, .. })
            ),
            _ => false,
        };
        if !disc_ok || disc.shape != Shape::Scalar {
            return Err(self.err(
                line,
                format!(
                    "union {name}: the discriminant must be int, unsigned int, bool or an enum"
                ),
            ));
        }
        // Variant names come from the case labels (common prefix removed).
        let mut labels: Vec<(String, i32, Option<&Decl>)> = Vec::new();
        let mut default: Option<Option<&Decl>> = None;
        for arm in arms {
            if arm.cases.is_empty() {
                default = Some(arm.decl.as_ref());
            }
            for c in &arm.cases {
                let v = self.syms.value(self.file, line, c)?;
                let v = i32::try_from(v).map_err(|_| {
                    self.err(
                        line,
                        format!("union {name}: case {v} does not fit in an int"),
                    )
                })?;
                if labels.iter().any(|(_, x, _)| *x == v) {
                    return Err(self.err(line, format!("union {name}: case {v} appears twice")));
                }
                let label = match c {
                    Value::Named(n) => n.clone(),
                    Value::Lit(n) if *n < 0 => format!("NEG_{}", n.unsigned_abs()),
                    Value::Lit(n) => format!("V{n}"),
                };
                labels.push((label, v, arm.decl.as_ref()));
            }
        }
        let label_names: Vec<&str> = labels.iter().map(|(l, _, _)| l.as_str()).collect();
        let variants = naming::variant_names(&label_names);
        if default.is_some() && variants.iter().any(|v| v == "Default") {
            return Err(self.err(
                line,
                format!("union {name}: a case named Default clashes with the default arm"),
            ));
        }

        struct Arm {
            variant: String,
            value: i32,
            ty: Option<(String, Codec)>,
            doc: String,
        }
        let mut out_arms = Vec::new();
        for ((label, value, decl), variant) in labels.iter().zip(&variants) {
            let ty = match decl {
                Some(dl) => {
                    let w = self.syms.wire(self.file, dl)?;
                    let t = self.rust_type(&w);
                    let c = self.codec(&w, dl.line, &format!("{name}.{}", dl.name))?;
                    Some((t, c))
                }
                None => None,
            };
            let doc = match decl {
                Some(dl) => dl
                    .doc
                    .clone()
                    .unwrap_or_else(|| format!("`case {label}`: `{}`.", dl.name)),
                None => format!("`case {label}`: no data."),
            };
            out_arms.push(Arm {
                variant: variant.clone(),
                value: *value,
                ty,
                doc,
            });
        }
        let default_ty = match default {
            Some(Some(dl)) => {
                let w = self.syms.wire(self.file, dl)?;
                let t = self.rust_type(&w);
                let c = self.codec(&w, dl.line, &format!("{name}.{}", dl.name))?;
                Some(Some((t, c)))
            }
            Some(None) => Some(None),
            None => None,
        };

        let mut b = String::new();
        doc_or(
            &mut b,
            d,
            &format!("Union `{name}` from `{}.x`.", self.module),
        );
        let _ = writeln!(b, "#[derive(Clone, Debug, PartialEq)]\npub enum {rust} {{");
        for a in &out_arms {
            doc(&mut b, &a.doc);
            match &a.ty {
                Some((t, _)) => {
                    let _ = writeln!(b, "{}({t}),", a.variant);
                }
                None => {
                    let _ = writeln!(b, "{},", a.variant);
                }
            }
        }
        match &default_ty {
            Some(Some((t, _))) => {
                let _ = writeln!(b, "/// The default arm: any other discriminant, and its data.\nDefault(i32, {t}),");
            }
            Some(None) => {
                let _ = writeln!(
                    b,
                    "/// The default arm: any other discriminant, no data.\nDefault(i32),"
                );
            }
            None => {}
        }
        let _ = writeln!(b, "}}\n");

        // discriminant()
        let _ = writeln!(b, "impl {rust} {{\n/// The discriminant sent on the wire.\npub fn discriminant(&self) -> i32 {{\nmatch self {{");
        for a in &out_arms {
            let pat = if a.ty.is_some() {
                format!("Self::{}(_)", a.variant)
            } else {
                format!("Self::{}", a.variant)
            };
            let _ = writeln!(b, "{pat} => {},", a.value);
        }
        if default_ty.is_some() {
            let _ = writeln!(b, "Self::Default(d, ..) => *d,");
        }
        let _ = writeln!(b, "}}\n}}\n}}\n");

        // Serialize: (discriminant, arm) as a tuple.
        let _ = writeln!(
            b,
            "impl serde::Serialize for {rust} {{\nfn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {{\n\
             use serde::ser::SerializeTuple;\nmatch self {{"
        );
        for a in &out_arms {
            match &a.ty {
                Some((_, c)) => {
                    let _ = writeln!(
                        b,
                        "Self::{}(value) => {{\nlet mut t = serializer.serialize_tuple(2)?;\nt.serialize_element(&{}i32)?;\nt.serialize_element({})?;\nt.end()\n}}",
                        a.variant,
                        a.value,
                        ser_expr(c, "value")
                    );
                }
                None => {
                    let _ = writeln!(
                        b,
                        "Self::{} => {{\nlet mut t = serializer.serialize_tuple(1)?;\nt.serialize_element(&{}i32)?;\nt.end()\n}}",
                        a.variant, a.value
                    );
                }
            }
        }
        match &default_ty {
            Some(Some((_, c))) => {
                let _ = writeln!(
                    b,
                    "Self::Default(d, value) => {{\nlet mut t = serializer.serialize_tuple(2)?;\nt.serialize_element(d)?;\nt.serialize_element({})?;\nt.end()\n}}",
                    ser_expr(c, "value")
                );
            }
            Some(None) => {
                let _ = writeln!(b, "Self::Default(d) => {{\nlet mut t = serializer.serialize_tuple(1)?;\nt.serialize_element(d)?;\nt.end()\n}}");
            }
            None => {}
        }
        let _ = writeln!(b, "}}\n}}\n}}\n");

        // Deserialize
        let _ = writeln!(
            b,
            "impl<'de> serde::Deserialize<'de> for {rust} {{\nfn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {{\n\
             struct ArmVisitor;\n\
             impl<'de> serde::de::Visitor<'de> for ArmVisitor {{\ntype Value = {rust};\n\
             fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\nf.write_str(\"union {name}\")\n}}\n\
             fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<{rust}, A::Error> {{\n\
             let discriminant: i32 = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;\n\
             Ok(match discriminant {{"
        );
        for a in &out_arms {
            match &a.ty {
                Some((t, c)) => {
                    let (dt, conv) = de_parts(c, t);
                    let _ = writeln!(
                        b,
                        "{} => {rust}::{}(seq.next_element::<{dt}>()?.ok_or_else(|| serde::de::Error::invalid_length(1, &self))?{conv}),",
                        a.value, a.variant
                    );
                }
                None => {
                    let _ = writeln!(b, "{} => {rust}::{},", a.value, a.variant);
                }
            }
        }
        match &default_ty {
            Some(Some((t, c))) => {
                let (dt, conv) = de_parts(c, t);
                let _ = writeln!(
                    b,
                    "other => {rust}::Default(other, seq.next_element::<{dt}>()?.ok_or_else(|| serde::de::Error::invalid_length(1, &self))?{conv}),"
                );
            }
            Some(None) => {
                let _ = writeln!(b, "other => {rust}::Default(other),");
            }
            None => {
                let _ = writeln!(
                    b,
                    "other => return Err(migrated_xdr::unknown_discriminant(other)),"
                );
            }
        }
        let _ = writeln!(
            b,
            "}})\n}}\n}}\ndeserializer.deserialize_tuple(2, ArmVisitor)\n}}\n}}\n"
        );
        self.body.push_str(&b);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{gen, has};

    #[test]
    fn unions_encode_as_discriminant_and_arm() {
        let src = "const M = 8;\n enum kind { K_INT = 1, K_STR = 2, K_NONE = 3, K_ALSO = 4 };\n\
            union remote_val switch (kind k) {\n case K_INT: case K_ALSO: int i;\n case K_STR: string s<M>;\n\
            case K_NONE: void;\n default: void;\n };";
        let out = gen(&[("a", src)]);
        let t = &out[0];
        assert!(
            has(t, "pub enum Val { /// `case K_INT`: `i`. Int(i32),"),
            "{t}"
        );
        assert!(has(t, "Also(i32),"));
        assert!(has(t, "Str(String),"));
        assert!(has(t, "None,"));
        assert!(has(t, "Default(i32),"));
        assert!(has(t, "Self::Str(value) => { let mut t = serializer.serialize_tuple(2)?; t.serialize_element(&2i32)?; t.serialize_element(&crate::codec::Str::<M>(value))?;"));
        assert!(has(t, "Self::None => { let mut t = serializer.serialize_tuple(1)?; t.serialize_element(&3i32)?;"));
        assert!(has(
            t,
            "2 => Val::Str(seq.next_element::<migrated_xdr::bounded::BoundedString<M>>()?"
        ));
        assert!(has(t, "other => Val::Default(other),"));
        assert!(has(t, "Self::Default(d, ..) => *d,"));
    }

    #[test]
    fn unions_without_default_refuse_unknown_discriminants() {
        let out = gen(&[("a", "union u switch (int d) { case 1: hyper h; };")]);
        assert!(has(&out[0], "V1(i64),"));
        assert!(has(
            &out[0],
            "other => return Err(migrated_xdr::unknown_discriminant(other)),"
        ));
    }
}
