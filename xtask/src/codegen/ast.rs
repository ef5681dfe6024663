//! The parsed form of a `.x` file.

/// A size or value: a literal or the name of a constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer literal.
    Lit(i64),
    /// A constant (or enum member) name.
    Named(String),
}

/// A type specifier.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeSpec {
    /// `int`
    Int,
    /// `unsigned int` / `unsigned`
    UInt,
    /// `hyper`
    Hyper,
    /// `unsigned hyper`
    UHyper,
    /// `short`
    Short,
    /// `unsigned short`
    UShort,
    /// `char`
    Char,
    /// `unsigned char`
    UChar,
    /// `float`
    Float,
    /// `double`
    Double,
    /// `bool`
    Bool,
    /// `opaque` (only valid with an array shape)
    Opaque,
    /// `string` (only valid with `<N>`)
    String,
    /// A named struct, enum, union or typedef.
    Named(String),
}

/// How a declared item is laid out around its element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// A single value.
    Scalar,
    /// `*x`: present flag then the value.
    Optional,
    /// `x[N]`: exactly N elements, no count word.
    Fixed(Value),
    /// `x<N>`: count word then up to N elements.
    Variable(Value),
}

/// A declaration: `type name` with a shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    /// Element type.
    pub ty: TypeSpec,
    /// Layout around the element type.
    pub shape: Shape,
    /// Declared name.
    pub name: String,
    /// Source line.
    pub line: usize,
    /// Comment preceding the declaration, if any.
    pub doc: Option<String>,
}

/// An enum member.
#[derive(Clone, Debug, PartialEq)]
pub struct EnumMember {
    /// Member name.
    pub name: String,
    /// Its value (always explicit).
    pub value: Value,
    /// Comment preceding the member, if any.
    pub doc: Option<String>,
}

/// One arm of a union.
#[derive(Clone, Debug, PartialEq)]
pub struct UnionArm {
    /// Case labels sharing this arm; empty for `default`.
    pub cases: Vec<Value>,
    /// The arm's declaration, `None` for `void`.
    pub decl: Option<Decl>,
}

/// A procedure of a program version.
#[derive(Clone, Debug, PartialEq)]
pub struct Procedure {
    /// Procedure constant name, e.g. `REMOTE_PROC_CONNECT_OPEN`.
    pub name: String,
    /// Argument type name, `None` for `void`.
    pub args: Option<String>,
    /// Result type name, `None` for `void`.
    pub ret: Option<String>,
    /// Procedure number.
    pub number: i64,
    /// Annotations (`readonly`, `priority`, `event`, `stream`).
    pub annotations: Vec<String>,
    /// Comment preceding the procedure, if any.
    pub doc: Option<String>,
    /// Source line.
    pub line: usize,
}

/// A program block (one version).
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Program constant name.
    pub name: String,
    /// Program number.
    pub number: i64,
    /// Version constant name.
    pub version_name: String,
    /// Version number.
    pub version: i64,
    /// Procedures in source order.
    pub procedures: Vec<Procedure>,
    /// Source line.
    pub line: usize,
}

/// A top-level definition.
#[derive(Clone, Debug, PartialEq)]
pub enum Def {
    /// `const NAME = value;`
    Const {
        /// Constant name.
        name: String,
        /// Its value.
        value: Value,
        /// Preceding comment.
        doc: Option<String>,
        /// Source line.
        line: usize,
    },
    /// `enum name { ... };`
    Enum {
        /// Enum name.
        name: String,
        /// Members in source order.
        members: Vec<EnumMember>,
        /// Preceding comment.
        doc: Option<String>,
        /// Source line.
        line: usize,
    },
    /// `struct name { ... };`
    Struct {
        /// Struct name.
        name: String,
        /// Fields in wire order.
        fields: Vec<Decl>,
        /// Preceding comment.
        doc: Option<String>,
        /// Source line.
        line: usize,
    },
    /// `union name switch (type d) { ... };`
    Union {
        /// Union name.
        name: String,
        /// Discriminant declaration (int, unsigned, bool or an enum).
        discriminant: Decl,
        /// Arms in source order.
        arms: Vec<UnionArm>,
        /// Preceding comment.
        doc: Option<String>,
        /// Source line.
        line: usize,
    },
    /// `typedef decl;`
    Typedef(Decl),
    /// `program ... = N;`
    Program(Program),
}

/// A parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// File name (for messages).
    pub file: String,
    /// Definitions in source order.
    pub defs: Vec<Def>,
}
