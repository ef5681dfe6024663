//! Recursive-descent parser for the `.x` subset described in `proto/virnet.x`.

use super::ast::{
    Decl, Def, EnumMember, Procedure, Program, Shape, Spec, TypeSpec, UnionArm, Value,
};
use super::lexer::{lex, Tok, Token};
use super::ParseError;

/// Annotation words a procedure comment may carry.
pub const ANNOTATIONS: &[&str] = &["readonly", "priority", "event", "stream"];

/// Parses the contents `src` of the file named `file`.
pub fn parse(file: &str, src: &str) -> Result<Spec, ParseError> {
    let tokens = lex(file, src)?;
    let mut p = Parser {
        file,
        tokens,
        pos: 0,
    };
    let mut defs = Vec::new();
    while p.peek().is_some() {
        defs.push(p.def()?);
    }
    Ok(Spec {
        file: file.to_string(),
        defs,
    })
}

struct Parser<'a> {
    file: &'a str,
    tokens: Vec<Token>,
    /// Index of the next token (comments included).
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.file, line, msg.into())
    }

    /// Skips comments; returns the index of the next significant token.
    fn skip_comments(&mut self) -> Option<usize> {
        while let Some(t) = self.tokens.get(self.pos) {
            if matches!(t.tok, Tok::Comment(_)) {
                self.pos += 1;
            } else {
                return Some(self.pos);
            }
        }
        None
    }

    fn peek(&mut self) -> Option<&Token> {
        let i = self.skip_comments()?;
        self.tokens.get(i)
    }

    fn line(&mut self) -> usize {
        let last = self.tokens.last().map_or(1, |t| t.end_line);
        self.peek().map_or(last, |t| t.line)
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        let line = self.line();
        match self.skip_comments() {
            Some(i) => {
                self.pos = i + 1;
                Ok(self.tokens[i].clone())
            }
            None => Err(self.err(line, "unexpected end of file")),
        }
    }

    /// The comment right before the next significant token, unless that
    /// comment trails the previous declaration on its line.
    fn doc(&mut self) -> Option<String> {
        let i = self.skip_comments()?;
        let c = self.tokens.get(i.checked_sub(1)?)?;
        let Tok::Comment(text) = &c.tok else {
            return None;
        };
        if c.end_line + 1 < self.tokens[i].line {
            return None;
        }
        let trails_previous = i
            .checked_sub(2)
            .and_then(|j| self.tokens.get(j))
            .is_some_and(|prev| prev.end_line == c.line);
        (!trails_previous && !text.is_empty()).then(|| text.clone())
    }

    fn punct(&mut self, want: char) -> Result<(), ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Punct(c) if c == want => Ok(()),
            other => Err(self.err(t.line, format!("expected '{want}', found {}", show(&other)))),
        }
    }

    fn is_punct(&mut self, want: char) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(c), .. }) if *c == want)
    }

    fn is_ident(&mut self, want: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(s), .. }) if s == want)
    }

    fn ident(&mut self) -> Result<String, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(s) => Ok(s),
            other => Err(self.err(t.line, format!("expected a name, found {}", show(&other)))),
        }
    }

    fn keyword(&mut self, want: &str) -> Result<(), ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Ident(s) if s == want => Ok(()),
            other => Err(self.err(t.line, format!("expected '{want}', found {}", show(&other)))),
        }
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Number(n) => Ok(Value::Lit(n)),
            Tok::Ident(s) => Ok(Value::Named(s)),
            other => Err(self.err(
                t.line,
                format!("expected a number or constant, found {}", show(&other)),
            )),
        }
    }

    fn number(&mut self) -> Result<i64, ParseError> {
        let t = self.next()?;
        match t.tok {
            Tok::Number(n) => Ok(n),
            other => Err(self.err(t.line, format!("expected a number, found {}", show(&other)))),
        }
    }

    fn def(&mut self) -> Result<Def, ParseError> {
        let doc = self.doc();
        let line = self.line();
        let kw = self.ident()?;
        let def = match kw.as_str() {
            "const" => {
                let name = self.ident()?;
                self.punct('=')?;
                let value = self.value()?;
                Def::Const {
                    name,
                    value,
                    doc,
                    line,
                }
            }
            "enum" => {
                let name = self.ident()?;
                let members = self.enum_body()?;
                Def::Enum {
                    name,
                    members,
                    doc,
                    line,
                }
            }
            "struct" => {
                let name = self.ident()?;
                let fields = self.struct_body()?;
                Def::Struct {
                    name,
                    fields,
                    doc,
                    line,
                }
            }
            "union" => self.union(doc, line)?,
            "typedef" => {
                let mut decl = self.decl()?;
                decl.doc = doc;
                Def::Typedef(decl)
            }
            "program" => Def::Program(self.program(line)?),
            other => {
                return Err(self.err(
                    line,
                    format!(
                        "expected const, enum, struct, union, typedef or program, found '{other}'"
                    ),
                ))
            }
        };
        self.punct(';')?;
        Ok(def)
    }

    fn enum_body(&mut self) -> Result<Vec<EnumMember>, ParseError> {
        self.punct('{')?;
        let mut members = Vec::new();
        loop {
            let doc = self.doc();
            let line = self.line();
            let name = self.ident()?;
            if !self.is_punct('=') {
                return Err(self.err(line, format!("enum member {name} needs an explicit value")));
            }
            self.punct('=')?;
            let value = self.value()?;
            members.push(EnumMember { name, value, doc });
            if self.is_punct(',') {
                self.punct(',')?;
                if self.is_punct('}') {
                    break;
                }
            } else {
                break;
            }
        }
        self.punct('}')?;
        Ok(members)
    }

    fn struct_body(&mut self) -> Result<Vec<Decl>, ParseError> {
        self.punct('{')?;
        let mut fields = Vec::new();
        while !self.is_punct('}') {
            let line = self.line();
            if self.is_ident("void") {
                return Err(self.err(line, "void is not a struct member"));
            }
            fields.push(self.decl()?);
            self.punct(';')?;
        }
        self.punct('}')?;
        if fields.is_empty() {
            let line = self.line();
            return Err(self.err(line, "empty struct"));
        }
        Ok(fields)
    }

    fn union(&mut self, doc: Option<String>, line: usize) -> Result<Def, ParseError> {
        let name = self.ident()?;
        self.keyword("switch")?;
        self.punct('(')?;
        let discriminant = self.decl()?;
        self.punct(')')?;
        self.punct('{')?;
        let mut arms: Vec<UnionArm> = Vec::new();
        while !self.is_punct('}') {
            let mut cases = Vec::new();
            let arm_line = self.line();
            if self.is_ident("default") {
                self.keyword("default")?;
                self.punct(':')?;
            } else {
                while self.is_ident("case") {
                    self.keyword("case")?;
                    cases.push(self.value()?);
                    self.punct(':')?;
                }
                if cases.is_empty() {
                    return Err(self.err(arm_line, "expected 'case' or 'default'"));
                }
            }
            let decl = if self.is_ident("void") {
                self.keyword("void")?;
                None
            } else {
                Some(self.decl()?)
            };
            self.punct(';')?;
            if cases.is_empty() && arms.iter().any(|a| a.cases.is_empty()) {
                return Err(self.err(arm_line, "more than one default arm"));
            }
            arms.push(UnionArm { cases, decl });
        }
        self.punct('}')?;
        if arms.is_empty() {
            return Err(self.err(line, format!("union {name} has no arms")));
        }
        Ok(Def::Union {
            name,
            discriminant,
            arms,
            doc,
            line,
        })
    }

    fn program(&mut self, line: usize) -> Result<Program, ParseError> {
        let name = self.ident()?;
        self.punct('{')?;
        self.keyword("version")?;
        let version_name = self.ident()?;
        self.punct('{')?;
        let mut procedures = Vec::new();
        while !self.is_punct('}') {
            procedures.push(self.procedure()?);
        }
        self.punct('}')?;
        self.punct('=')?;
        let version = self.number()?;
        self.punct(';')?;
        if self.is_ident("version") {
            let l = self.line();
            return Err(self.err(l, "only one version per program is supported"));
        }
        self.punct('}')?;
        self.punct('=')?;
        let number = self.number()?;
        Ok(Program {
            name,
            number,
            version_name,
            version,
            procedures,
            line,
        })
    }

    fn void_or_name(&mut self) -> Result<Option<String>, ParseError> {
        let name = self.ident()?;
        Ok((name != "void").then_some(name))
    }

    fn procedure(&mut self) -> Result<Procedure, ParseError> {
        let doc = self.doc();
        let line = self.line();
        let ret = self.void_or_name()?;
        let name = self.ident()?;
        self.punct('(')?;
        let args = self.void_or_name()?;
        self.punct(')')?;
        self.punct('=')?;
        let number = self.number()?;
        self.punct(';')?;
        // `punct` leaves `pos` just past the ';'.
        let end_line = self.tokens[self.pos - 1].line;
        // Annotations live in a comment that starts on the line the declaration ends.
        let mut annotations = Vec::new();
        if let Some(Token {
            tok: Tok::Comment(text),
            line: cl,
            ..
        }) = self.tokens.get(self.pos)
        {
            if *cl == end_line {
                for word in text.split_whitespace() {
                    if let Some(a) = word.strip_prefix('@') {
                        if !ANNOTATIONS.contains(&a) {
                            return Err(self.err(*cl, format!("unknown annotation '@{a}'")));
                        }
                        annotations.push(a.to_string());
                    }
                }
            }
        }
        Ok(Procedure {
            name,
            args,
            ret,
            number,
            annotations,
            doc,
            line,
        })
    }

    fn type_spec(&mut self) -> Result<TypeSpec, ParseError> {
        let line = self.line();
        let word = self.ident()?;
        Ok(match word.as_str() {
            "unsigned" => {
                if self.is_ident("int") {
                    self.keyword("int")?;
                    TypeSpec::UInt
                } else if self.is_ident("hyper") {
                    self.keyword("hyper")?;
                    TypeSpec::UHyper
                } else if self.is_ident("short") {
                    self.keyword("short")?;
                    TypeSpec::UShort
                } else if self.is_ident("char") {
                    self.keyword("char")?;
                    TypeSpec::UChar
                } else if self.is_ident("long") {
                    return Err(self.err(line, "'long' is not supported; use int or hyper"));
                } else {
                    TypeSpec::UInt
                }
            }
            "int" => TypeSpec::Int,
            "hyper" => TypeSpec::Hyper,
            "short" => TypeSpec::Short,
            "char" => TypeSpec::Char,
            "float" => TypeSpec::Float,
            "double" => TypeSpec::Double,
            "bool" => TypeSpec::Bool,
            "opaque" => TypeSpec::Opaque,
            "string" => TypeSpec::String,
            "long" | "quadruple" => {
                return Err(self.err(line, format!("'{word}' is not supported")));
            }
            "struct" | "union" | "enum" => {
                return Err(self.err(
                    line,
                    format!(
                        "inline '{word}' definitions are not supported; define it at top level"
                    ),
                ));
            }
            "void" => return Err(self.err(line, "void is not allowed here")),
            _ => TypeSpec::Named(word),
        })
    }

    fn decl(&mut self) -> Result<Decl, ParseError> {
        let doc = self.doc();
        let line = self.line();
        let ty = self.type_spec()?;
        let optional = self.is_punct('*');
        if optional {
            self.punct('*')?;
        }
        let name = self.ident()?;
        let shape = if optional {
            Shape::Optional
        } else if self.is_punct('[') {
            self.punct('[')?;
            let v = self.value()?;
            self.punct(']')?;
            Shape::Fixed(v)
        } else if self.is_punct('<') {
            self.punct('<')?;
            if self.is_punct('>') {
                return Err(self.err(
                    line,
                    format!("{name}: every variable-length item needs a named maximum"),
                ));
            }
            let v = self.value()?;
            self.punct('>')?;
            if let Value::Lit(_) = v {
                return Err(self.err(line, format!("{name}: use a named constant as the maximum")));
            }
            Shape::Variable(v)
        } else {
            Shape::Scalar
        };
        match (&ty, &shape) {
            (TypeSpec::String, Shape::Variable(_))
            | (TypeSpec::Opaque, Shape::Variable(_) | Shape::Fixed(_)) => {}
            (TypeSpec::String, _) => {
                return Err(self.err(
                    line,
                    format!("{name}: string needs a maximum: string {name}<MAX>"),
                ))
            }
            (TypeSpec::Opaque, _) => {
                return Err(self.err(line, format!("{name}: opaque needs [N] or <MAX>")))
            }
            _ => {}
        }
        Ok(Decl {
            ty,
            shape,
            name,
            line,
            doc,
        })
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Number(n) => format!("'{n}'"),
        Tok::Punct(c) => format!("'{c}'"),
        Tok::Comment(_) => "a comment".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(src: &str) -> Def {
        match parse("t.x", src) {
            Ok(mut s) if s.defs.len() == 1 => s.defs.remove(0),
            other => panic!("unexpected parse result {other:?}"),
        }
    }

    fn error(src: &str) -> String {
        parse("t.x", src)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn const_with_doc() {
        assert_eq!(
            one("/* the max */\nconst A_MAX = 0x10;"),
            Def::Const {
                name: "A_MAX".into(),
                value: Value::Lit(16),
                doc: Some("the max".into()),
                line: 2
            }
        );
    }

    #[test]
    fn struct_shapes() {
        let Def::Struct { fields, .. } = one(
            "struct s { unsigned hyper a; opaque u[N]; opaque c<M>; string s<M>; \
             t *o; char m[32]; char d<M>; int ids<M>; unsigned char st; bool b; };",
        ) else {
            panic!("not a struct");
        };
        let shapes: Vec<(TypeSpec, Shape)> = fields.into_iter().map(|f| (f.ty, f.shape)).collect();
        let n = |s: &str| Value::Named(s.into());
        assert_eq!(
            shapes,
            vec![
                (TypeSpec::UHyper, Shape::Scalar),
                (TypeSpec::Opaque, Shape::Fixed(n("N"))),
                (TypeSpec::Opaque, Shape::Variable(n("M"))),
                (TypeSpec::String, Shape::Variable(n("M"))),
                (TypeSpec::Named("t".into()), Shape::Optional),
                (TypeSpec::Char, Shape::Fixed(Value::Lit(32))),
                (TypeSpec::Char, Shape::Variable(n("M"))),
                (TypeSpec::Int, Shape::Variable(n("M"))),
                (TypeSpec::UChar, Shape::Scalar),
                (TypeSpec::Bool, Shape::Scalar),
            ]
        );
    }

    #[test]
    fn union_with_void_and_shared_arms() {
        let Def::Union {
            discriminant, arms, ..
        } = one("union u switch (kind k) { case A: case B: int x; case C: void; default: void; };")
        else {
            panic!("not a union");
        };
        assert_eq!(discriminant.ty, TypeSpec::Named("kind".into()));
        assert_eq!(arms.len(), 3);
        assert_eq!(arms[0].cases.len(), 2);
        assert!(arms[1].decl.is_none());
        assert!(arms[2].cases.is_empty());
    }

    #[test]
    fn typedefs() {
        let Def::Typedef(d) = one("typedef remote_nonnull_string *remote_string;") else {
            panic!("not a typedef");
        };
        assert_eq!(d.shape, Shape::Optional);
        assert_eq!(d.name, "remote_string");
    }

    #[test]
    fn program_with_annotations() {
        let Def::Program(p) = one(
            "program P {\n version V {\n  r_ret P_PROC_A(void) = 1; /* @readonly @priority */\n\
               /* doc of b */\n  void P_PROC_B(b_args) = 2;\n } = 1;\n} = 0x10;",
        ) else {
            panic!("not a program");
        };
        assert_eq!((p.number, p.version), (16, 1));
        assert_eq!(p.procedures[0].annotations, vec!["readonly", "priority"]);
        assert_eq!(p.procedures[0].ret.as_deref(), Some("r_ret"));
        assert_eq!(p.procedures[0].args, None);
        assert!(p.procedures[1].annotations.is_empty());
        assert_eq!(p.procedures[1].doc.as_deref(), Some("doc of b"));
        assert_eq!(p.procedures[1].args.as_deref(), Some("b_args"));
    }

    #[test]
    fn enum_values_must_be_explicit() {
        assert_eq!(
            error("enum e {\n A = 1,\n B\n};"),
            "t.x:3: enum member B needs an explicit value"
        );
    }

    #[test]
    fn errors_carry_lines() {
        assert_eq!(
            error("struct s {\n int a\n};"),
            "t.x:3: expected ';', found '}'"
        );
        assert_eq!(
            error("struct s { string x; };"),
            "t.x:1: x: string needs a maximum: string x<MAX>"
        );
        assert_eq!(
            error("\n\nstruct s { int x<>; };"),
            "t.x:3: x: every variable-length item needs a named maximum"
        );
        assert_eq!(
            error("struct s { int x<10>; };"),
            "t.x:1: x: use a named constant as the maximum"
        );
        assert_eq!(
            error("program P { version V {\n void X(void) = 1; /* @fast */\n } = 1; } = 2;"),
            "t.x:2: unknown annotation '@fast'"
        );
        assert_eq!(error("const A = 1"), "t.x:1: unexpected end of file");
    }
}
