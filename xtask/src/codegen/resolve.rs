//! Name resolution across the `.x` files: every name used must be defined
//! in the same file or one processed before it; typedefs are expanded to
//! the wire type they stand for.

use std::collections::HashMap;

use super::ast::{Decl, Def, Shape, Spec, TypeSpec, Value};
use super::naming;
use super::ParseError;

/// A size or maximum: its value and how generated code spells it.
#[derive(Clone, Debug, PartialEq)]
pub struct Size {
    /// Numeric value.
    pub value: i64,
    /// Constant name, `None` for a literal.
    pub name: Option<String>,
}

impl Size {
    /// The Rust expression for this size (a `usize` constant or literal).
    pub fn expr(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.value.to_string())
    }
}

/// A fully resolved wire type.
#[derive(Clone, Debug, PartialEq)]
pub enum Wire {
    /// int
    I32,
    /// unsigned int
    U32,
    /// hyper
    I64,
    /// unsigned hyper
    U64,
    /// short
    I16,
    /// unsigned short
    U16,
    /// char (one 4-byte word)
    I8,
    /// unsigned char (one 4-byte word)
    U8,
    /// float
    F32,
    /// double
    F64,
    /// bool
    Bool,
    /// string<max>
    String(Size),
    /// opaque<max>
    Bytes(Size),
    /// opaque[len]
    FixedBytes(Size),
    /// A struct, enum or union, by Rust name.
    Named(String),
    /// Optional value.
    Optional(Box<Wire>),
    /// Variable array.
    Vec(Box<Wire>, Size),
    /// Fixed array.
    Array(Box<Wire>, Size),
}

/// What a top-level name stands for.
#[derive(Clone, Debug)]
pub enum SymKind {
    /// A constant with its value.
    Const(i64),
    /// An enum member with its value.
    EnumMember(i64),
    /// A type generated as a Rust item.
    Type {
        /// Rust name.
        rust: String,
        /// `true` for enums (usable as a union discriminant).
        is_enum: bool,
    },
    /// A typedef, expanded where used.
    Typedef(Decl),
}

/// A defined name.
#[derive(Clone, Debug)]
pub struct Sym {
    /// What it is.
    pub kind: SymKind,
    /// Defining file and line, for messages.
    pub origin: String,
}

/// Names defined so far, across files.
#[derive(Default, Debug)]
pub struct Symbols {
    /// By `.x` name.
    pub by_name: HashMap<String, Sym>,
    /// Rust item names already taken, with their origin and module (the
    /// crate root re-exports every module, so names must be unique).
    pub rust_names: HashMap<String, (String, String)>,
}

impl Symbols {
    /// Registers the definitions of `spec` (module `module`).
    pub fn add_spec(&mut self, module: &str, spec: &Spec) -> Result<(), ParseError> {
        for def in &spec.defs {
            match def {
                Def::Const {
                    name, value, line, ..
                } => {
                    let v = self.value(&spec.file, *line, value)?;
                    self.define(spec, *line, name, SymKind::Const(v))?;
                    self.take_rust(spec, module, *line, name)?;
                }
                Def::Enum {
                    name,
                    members,
                    line,
                    ..
                } => {
                    let rust = naming::type_name(name);
                    let kind = SymKind::Type {
                        rust: rust.clone(),
                        is_enum: true,
                    };
                    self.define(spec, *line, name, kind)?;
                    self.take_rust(spec, module, *line, &rust)?;
                    for m in members {
                        let v = self.value(&spec.file, *line, &m.value)?;
                        self.define(spec, *line, &m.name, SymKind::EnumMember(v))?;
                    }
                }
                Def::Struct { name, line, .. } | Def::Union { name, line, .. } => {
                    let rust = naming::type_name(name);
                    let kind = SymKind::Type {
                        rust: rust.clone(),
                        is_enum: false,
                    };
                    self.define(spec, *line, name, kind)?;
                    self.take_rust(spec, module, *line, &rust)?;
                }
                Def::Typedef(decl) => {
                    self.define(spec, decl.line, &decl.name, SymKind::Typedef(decl.clone()))?;
                }
                Def::Program(p) => {
                    self.take_rust(spec, module, p.line, &p.name)?;
                    self.take_rust(spec, module, p.line, &p.version_name)?;
                    let names = naming::program_names(&p.name);
                    for n in [
                        names.procedure,
                        names.procedures,
                        names.trait_name,
                        names.procs,
                        names.call,
                    ] {
                        self.take_rust(spec, module, p.line, &n)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn define(
        &mut self,
        spec: &Spec,
        line: usize,
        name: &str,
        kind: SymKind,
    ) -> Result<(), ParseError> {
        if let Some(prev) = self.by_name.get(name) {
            return Err(ParseError::new(
                &spec.file,
                line,
                format!("{name} is already defined at {}", prev.origin),
            ));
        }
        self.by_name.insert(
            name.to_string(),
            Sym {
                kind,
                origin: format!("{}:{line}", spec.file),
            },
        );
        Ok(())
    }

    /// Reserves a Rust item name; two `.x` names mapping to one Rust name is an error.
    pub fn take_rust(
        &mut self,
        spec: &Spec,
        module: &str,
        line: usize,
        rust: &str,
    ) -> Result<(), ParseError> {
        let origin = format!("{}:{line}", spec.file);
        if let Some((prev, _)) = self.rust_names.get(rust) {
            return Err(ParseError::new(
                &spec.file,
                line,
                format!("Rust name {rust} is already used by the definition at {prev}"),
            ));
        }
        self.rust_names
            .insert(rust.to_string(), (origin, module.to_string()));
        Ok(())
    }

    /// Module defining the Rust item `rust`, if it is one of ours.
    pub fn rust_module(&self, rust: &str) -> Option<&str> {
        self.rust_names.get(rust).map(|(_, m)| m.as_str())
    }

    /// The numeric value of a literal or constant.
    pub fn value(&self, file: &str, line: usize, v: &Value) -> Result<i64, ParseError> {
        match v {
            Value::Lit(n) => Ok(*n),
            Value::Named(name) => match self.by_name.get(name).map(|s| &s.kind) {
                Some(SymKind::Const(n) | SymKind::EnumMember(n)) => Ok(*n),
                Some(_) => Err(ParseError::new(
                    file,
                    line,
                    format!("{name} is a type, not a constant"),
                )),
                None => Err(ParseError::new(
                    file,
                    line,
                    format!("unknown constant {name}"),
                )),
            },
        }
    }

    fn size(&self, file: &str, line: usize, v: &Value) -> Result<Size, ParseError> {
        let value = self.value(file, line, v)?;
        if value < 0 {
            return Err(ParseError::new(
                file,
                line,
                format!("negative size {value}"),
            ));
        }
        let name = match v {
            Value::Named(n) => match self.by_name.get(n).map(|s| &s.kind) {
                Some(SymKind::Const(_)) => Some(n.clone()),
                // Enum members are not emitted as constants; spell the value.
                _ => None,
            },
            Value::Lit(_) => None,
        };
        Ok(Size { value, name })
    }

    /// Resolves a declaration to its wire type, expanding typedefs.
    pub fn wire(&self, file: &str, decl: &Decl) -> Result<Wire, ParseError> {
        let line = decl.line;
        let err = |m: String| ParseError::new(file, line, m);
        let elem = match &decl.ty {
            TypeSpec::String => {
                return match &decl.shape {
                    Shape::Variable(v) => Ok(Wire::String(self.size(file, line, v)?)),
                    _ => Err(err(format!("{}: string needs <MAX>", decl.name))),
                }
            }
            TypeSpec::Opaque => {
                return match &decl.shape {
                    Shape::Variable(v) => Ok(Wire::Bytes(self.size(file, line, v)?)),
                    Shape::Fixed(v) => Ok(Wire::FixedBytes(self.size(file, line, v)?)),
                    _ => Err(err(format!("{}: opaque needs [N] or <MAX>", decl.name))),
                }
            }
            TypeSpec::Int => Wire::I32,
            TypeSpec::UInt => Wire::U32,
            TypeSpec::Hyper => Wire::I64,
            TypeSpec::UHyper => Wire::U64,
            TypeSpec::Short => Wire::I16,
            TypeSpec::UShort => Wire::U16,
            TypeSpec::Char => Wire::I8,
            TypeSpec::UChar => Wire::U8,
            TypeSpec::Float => Wire::F32,
            TypeSpec::Double => Wire::F64,
            TypeSpec::Bool => Wire::Bool,
            TypeSpec::Named(n) => match self.by_name.get(n).map(|s| &s.kind) {
                Some(SymKind::Type { rust, .. }) => Wire::Named(rust.clone()),
                Some(SymKind::Typedef(inner)) => self.wire(file, inner)?,
                Some(_) => return Err(err(format!("{n} is a constant, not a type"))),
                None => return Err(err(format!("unknown type {n}"))),
            },
        };
        Ok(match &decl.shape {
            Shape::Scalar => elem,
            Shape::Optional => Wire::Optional(Box::new(elem)),
            Shape::Variable(v) => Wire::Vec(Box::new(elem), self.size(file, line, v)?),
            Shape::Fixed(v) => Wire::Array(Box::new(elem), self.size(file, line, v)?),
        })
    }
}
