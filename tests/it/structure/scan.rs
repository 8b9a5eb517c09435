//! Reading one source file the way the circle check needs it: tokens
//! without comments or literals, `#[cfg(test)]` items left out, and what
//! is left sorted into `mod` declarations, `use` leaves and inline paths.
//!
//! Not a Rust parser: just enough lexing to tell a path in code from the
//! same words in a comment, a string or a test.

/// One token and the line it starts on.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// A string literal's contents (kept for `#[path = "…"]`).
    Str(String),
    /// Numbers, chars, lifetimes: nothing a path is made of.
    Other,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

/// `mod name;` (an inline `mod name { … }` outside tests does not occur).
#[derive(Debug)]
pub struct ModDecl {
    pub name: String,
    /// The `#[path = "…"]` on it, if any.
    pub path: Option<String>,
}

/// One leaf of a `use` tree: `use a::{b, c as d}` gives `a::b` and `a::c`.
#[derive(Clone, Debug)]
pub struct UseLeaf {
    pub path: Vec<String>,
    /// The name it brings into scope; `None` for a glob.
    pub name: Option<String>,
    /// `pub`, `pub(crate)`, `pub(super)`…: a re-export others can name.
    pub public: bool,
    pub line: usize,
}

/// A path written in code, `a::b::c`, outside any `use`.
#[derive(Debug)]
pub struct InlinePath {
    pub path: Vec<String>,
    pub line: usize,
}

/// What one file declares and names, tests left out.
#[derive(Debug, Default)]
pub struct FileScan {
    pub mods: Vec<ModDecl>,
    pub uses: Vec<UseLeaf>,
    pub paths: Vec<InlinePath>,
}

pub fn scan(source: &str) -> FileScan {
    let tokens = lex(source);
    let mut out = FileScan::default();
    let code = drop_attributes_and_tests(&tokens, &mut out.mods);
    collect_uses_and_paths(&code, &mut out);
    out
}

fn lex(source: &str) -> Vec<Token> {
    let s: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    while i < s.len() {
        let (c, start_line) = (s[i], line);
        let tok = if c == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if c.is_whitespace() {
            i += 1;
            continue;
        } else if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
            continue;
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= s.len() {
                    break;
                } else {
                    line += usize::from(s[i] == '\n');
                    i += 1;
                }
            }
            continue;
        } else if let Some(len) = raw_string_prefix(&s, i) {
            // r"…", r#"…"#, br"…": no escapes, ends at `"` and as many `#`.
            let hashes = len - 1 - usize::from(s[i] == 'b');
            i += len + 1;
            let body = i;
            while i < s.len() && !(s[i] == '"' && (0..hashes).all(|h| at(i + 1 + h) == '#')) {
                line += usize::from(s[i] == '\n');
                i += 1;
            }
            let text: String = s[body..i.min(s.len())].iter().collect();
            i += 1 + hashes;
            Tok::Str(text)
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            let body = i;
            while i < s.len() && s[i] != '"' {
                line += usize::from(s[i] == '\n');
                i += if s[i] == '\\' { 2 } else { 1 };
            }
            let text: String = s[body..i.min(s.len())].iter().collect();
            i += 1;
            Tok::Str(text)
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            i += if c == 'b' { 1 } else { 0 };
            if at(i + 1) == '\\' || at(i + 2) == '\'' {
                // A char literal: 'x', '\n', '\u{…}'.
                i += 2;
                while i < s.len() && s[i] != '\'' {
                    i += if s[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            } else {
                // A lifetime or label: 'a.
                i += 1;
                while is_ident_char(at(i)) {
                    i += 1;
                }
            }
            Tok::Other
        } else if c == 'r' && at(i + 1) == '#' && is_ident_start(at(i + 2)) {
            i += 2;
            let begin = i;
            while is_ident_char(at(i)) {
                i += 1;
            }
            Tok::Ident(s[begin..i].iter().collect())
        } else if is_ident_start(c) {
            let begin = i;
            while is_ident_char(at(i)) {
                i += 1;
            }
            Tok::Ident(s[begin..i].iter().collect())
        } else if c.is_ascii_digit() {
            while is_ident_char(at(i)) {
                i += 1;
            }
            Tok::Other
        } else if c == ':' && at(i + 1) == ':' {
            i += 2;
            Tok::PathSep
        } else {
            i += 1;
            Tok::Punct(c)
        };
        tokens.push(Token { tok, line: start_line });
    }
    tokens
}

/// The length of `r"`, `r#"`, `br##"`… up to (not including) the quote.
fn raw_string_prefix(s: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if s.get(j) == Some(&'b') {
        j += 1;
    }
    if s.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    while s.get(j) == Some(&'#') {
        j += 1;
    }
    (s.get(j) == Some(&'"')).then_some(j - i)
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident(t: &Token, word: &str) -> bool {
    matches!(&t.tok, Tok::Ident(w) if w == word)
}

fn is_punct(t: &Token, c: char) -> bool {
    t.tok == Tok::Punct(c)
}

/// The code without attributes and without the items `#[cfg(test)]` puts
/// aside; `mod name;` declarations (with their `#[path]`) go to `mods`.
fn drop_attributes_and_tests(tokens: &[Token], mods: &mut Vec<ModDecl>) -> Vec<Token> {
    let mut code = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (mut test, mut path) = (false, None);
        while i + 1 < tokens.len() && is_punct(&tokens[i], '#') {
            let open = if is_punct(&tokens[i + 1], '!') { i + 2 } else { i + 1 };
            if !tokens.get(open).is_some_and(|t| is_punct(t, '[')) {
                break;
            }
            let close = matching(tokens, open);
            let attribute = &tokens[open + 1..close];
            let words: Vec<&Tok> = attribute.iter().map(|t| &t.tok).collect();
            test |= words
                == [
                    &Tok::Ident("cfg".into()),
                    &Tok::Punct('('),
                    &Tok::Ident("test".into()),
                    &Tok::Punct(')'),
                ];
            if let [Tok::Ident(p), Tok::Punct('='), Tok::Str(file)] = words.as_slice()
                && p == "path"
            {
                path = Some(file.clone());
            }
            i = close + 1;
        }
        if test {
            i = item_end(tokens, i);
            continue;
        }
        if let Some((name, end)) = mod_declaration(tokens, i) {
            mods.push(ModDecl { name, path });
            i = end;
            continue;
        }
        if i < tokens.len() {
            code.push(tokens[i].clone());
            i += 1;
        }
    }
    code
}

/// `[pub[(…)]] mod name ;` at `i`: the name and the index after the `;`.
fn mod_declaration(tokens: &[Token], i: usize) -> Option<(String, usize)> {
    let mut j = i;
    if tokens.get(j).is_some_and(|t| is_ident(t, "pub")) {
        j += 1;
        if tokens.get(j).is_some_and(|t| is_punct(t, '(')) {
            j = matching(tokens, j) + 1;
        }
    }
    if !tokens.get(j).is_some_and(|t| is_ident(t, "mod")) {
        return None;
    }
    match (tokens.get(j + 1).map(|t| &t.tok), tokens.get(j + 2)) {
        (Some(Tok::Ident(name)), Some(semi)) if is_punct(semi, ';') => Some((name.clone(), j + 3)),
        _ => None,
    }
}

/// The index of the bracket closing the one at `open`.
fn matching(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0i32;
    for (j, t) in tokens.iter().enumerate().skip(open) {
        match t.tok {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    tokens.len() - 1
}

/// The index just past the item starting at `i`: its `;` or its body's `}`.
fn item_end(tokens: &[Token], i: usize) -> usize {
    let ends_with_semicolon = tokens[i..]
        .iter()
        .take(4)
        .any(|t| ["use", "const", "static", "let", "type"].iter().any(|w| is_ident(t, w)));
    let mut j = i;
    while j < tokens.len() {
        match tokens[j].tok {
            Tok::Punct(';') => return j + 1,
            Tok::Punct('{') if !ends_with_semicolon => return matching(tokens, j) + 1,
            Tok::Punct('(' | '[' | '{') => j = matching(tokens, j) + 1,
            _ => j += 1,
        }
    }
    j
}

fn collect_uses_and_paths(code: &[Token], out: &mut FileScan) {
    let mut i = 0;
    while i < code.len() {
        let after_sep = i > 0 && code[i - 1].tok == Tok::PathSep;
        let after_dollar = i > 0 && is_punct(&code[i - 1], '$');
        if is_ident(&code[i], "use") && !after_sep {
            let public = is_public(code, i);
            let end = (i..code.len()).find(|&j| is_punct(&code[j], ';')).unwrap_or(code.len());
            let mut leaves = Vec::new();
            use_tree(&code[i + 1..end], Vec::new(), &mut leaves);
            for (path, name) in leaves {
                out.uses.push(UseLeaf {
                    path,
                    name,
                    public,
                    line: code[i].line,
                });
            }
            i = end + 1;
            continue;
        }
        if let Tok::Ident(first) = &code[i].tok
            && !after_sep
            && !after_dollar
            && code.get(i + 1).is_some_and(|t| t.tok == Tok::PathSep)
        {
            let mut path = vec![first.clone()];
            let mut j = i + 1;
            while code.get(j).is_some_and(|t| t.tok == Tok::PathSep) {
                match code.get(j + 1).map(|t| &t.tok) {
                    Some(Tok::Ident(next)) => path.push(next.clone()),
                    _ => break,
                }
                j += 2;
            }
            out.paths.push(InlinePath {
                path,
                line: code[i].line,
            });
            i = j;
            continue;
        }
        i += 1;
    }
}

/// Whether the `use` at `i` is preceded by `pub` or `pub(…)`.
fn is_public(code: &[Token], i: usize) -> bool {
    match i.checked_sub(1).map(|j| &code[j]) {
        Some(t) if is_ident(t, "pub") => true,
        Some(t) if is_punct(t, ')') => (0..i - 1)
            .rev()
            .find(|&j| is_punct(&code[j], '('))
            .and_then(|open| open.checked_sub(1))
            .is_some_and(|j| is_ident(&code[j], "pub")),
        _ => false,
    }
}

/// The leaves of a use tree, each with the name it binds (`None`: glob).
fn use_tree(tree: &[Token], prefix: Vec<String>, leaves: &mut Vec<(Vec<String>, Option<String>)>) {
    let mut path = prefix;
    let mut i = 0;
    while i < tree.len() {
        match &tree[i].tok {
            Tok::PathSep => i += 1,
            Tok::Punct('*') => {
                leaves.push((path.clone(), None));
                return;
            }
            Tok::Punct('{') => {
                let close = matching(tree, i);
                let inner = &tree[i + 1..close];
                let mut start = 0;
                let mut depth = 0;
                for (j, t) in inner.iter().enumerate() {
                    match t.tok {
                        Tok::Punct('{') => depth += 1,
                        Tok::Punct('}') => depth -= 1,
                        Tok::Punct(',') if depth == 0 => {
                            use_tree(&inner[start..j], path.clone(), leaves);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                use_tree(&inner[start..], path.clone(), leaves);
                return;
            }
            Tok::Ident(word) if word == "as" => {
                if let Some(Tok::Ident(alias)) = tree.get(i + 1).map(|t| &t.tok) {
                    leaves.push((path.clone(), Some(alias.clone())));
                }
                return;
            }
            Tok::Ident(word) if word == "self" && !path.is_empty() => i += 1,
            Tok::Ident(word) => {
                path.push(word.clone());
                i += 1;
            }
            _ => i += 1,
        }
    }
    if let Some(last) = path.last() {
        let name = last.clone();
        leaves.push((path, Some(name)));
    }
}
