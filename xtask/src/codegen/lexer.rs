//! Tokens of the `.x` language, with the line each one starts on.
//!
//! Comments are kept as tokens: the parser turns them into documentation
//! and reads procedure annotations out of them.

use super::ParseError;

/// One lexical token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier or keyword.
    Ident(String),
    /// An integer literal (decimal, `0x` hex or leading-zero octal), sign applied.
    Number(i64),
    /// One punctuation character: `{ } ( ) [ ] < > ; : , = *`.
    Punct(char),
    /// A `/* ... */` or `// ...` comment: its text without the markers.
    Comment(String),
}

/// A token and where it is.
#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Line (1-based) where the token starts.
    pub line: usize,
    /// Line where the token ends (differs from `line` for block comments).
    pub end_line: usize,
}

/// Splits `src` (the contents of `file`) into tokens.
pub fn lex(file: &str, src: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let err = |line: usize, msg: String| ParseError::new(file, line, msg);
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let start_line = line;
                let body_start = i + 2;
                let mut j = body_start;
                loop {
                    if j + 1 >= bytes.len() {
                        return Err(err(start_line, "unterminated comment".into()));
                    }
                    if bytes[j] == b'*' && bytes[j + 1] == b'/' {
                        break;
                    }
                    if bytes[j] == b'\n' {
                        line += 1;
                    }
                    j += 1;
                }
                let text = &src[body_start..j];
                out.push(Token {
                    tok: Tok::Comment(clean_comment(text)),
                    line: start_line,
                    end_line: line,
                });
                i = j + 2;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
                out.push(Token {
                    tok: Tok::Comment(src[i + 2..end].trim().to_string()),
                    line,
                    end_line: line,
                });
                i = end;
            }
            b'%' if at_line_start(bytes, i) => {
                // rpcgen pass-through lines mean nothing to us.
                return Err(err(line, "'%' pass-through lines are not supported".into()));
            }
            b'{' | b'}' | b'(' | b')' | b'[' | b']' | b'<' | b'>' | b';' | b':' | b',' | b'='
            | b'*' => {
                out.push(Token {
                    tok: Tok::Punct(c as char),
                    line,
                    end_line: line,
                });
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                if c == b'-' {
                    i += 1;
                }
                while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let text = &src[start..i];
                let value = parse_number(text)
                    .ok_or_else(|| err(line, format!("invalid number '{text}'")))?;
                out.push(Token {
                    tok: Tok::Number(value),
                    line,
                    end_line: line,
                });
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(src[start..i].to_string()),
                    line,
                    end_line: line,
                });
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(line, format!("unexpected character '{ch}'")));
            }
        }
    }
    Ok(out)
}

fn at_line_start(bytes: &[u8], i: usize) -> bool {
    bytes[..i]
        .iter()
        .rev()
        .take_while(|b| **b != b'\n')
        .all(|b| *b == b' ' || *b == b'\t')
}

/// Parses an XDR integer literal: decimal, `0x` hex, or octal with a leading 0.
fn parse_number(text: &str) -> Option<i64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -value } else { value })
}

/// Strips the leading `*` decoration of block-comment lines and surrounding blanks.
fn clean_comment(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            t.strip_prefix('*').map_or(t, str::trim_start)
        })
        .collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    lines[start..end].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex("t.x", src)
            .map(|v| v.into_iter().map(|t| t.tok).collect())
            .unwrap_or_default()
    }

    #[test]
    fn numbers_in_all_bases() {
        assert_eq!(
            toks("0x20008086 017 42 -3"),
            vec![
                Tok::Number(0x2000_8086),
                Tok::Number(0o17),
                Tok::Number(42),
                Tok::Number(-3)
            ]
        );
    }

    #[test]
    fn comments_keep_text_and_lines() {
        let t = lex("t.x", "a\n/* one\n * two\n */ b").unwrap_or_default();
        assert_eq!(t[1].tok, Tok::Comment("one\ntwo".into()));
        assert_eq!((t[1].line, t[1].end_line), (2, 4));
        assert_eq!(t[2].line, 4);
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = lex("f.x", "a\nb\n$").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("f.x:3: unexpected character '$'"));
        let e = lex("f.x", "/* open").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("f.x:1: unterminated comment"));
    }
}
