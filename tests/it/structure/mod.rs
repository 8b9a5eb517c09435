//! No import circle among the library's files.
//!
//! A circle (a.rs names b.rs, b.rs names a.rs, perhaps through others)
//! means neither file can be read, tested or moved without the other; the
//! house rule is to pick one direction. This test reads every file of the
//! library's module tree (from `src/lib.rs`, following `mod` declarations)
//! and draws one edge per file-to-file reference.
//!
//! The rule:
//!
//! - A node is a file: `src/a/b.rs` or `src/a/b/mod.rs`.
//! - Every path that names something in another file of the crate is an
//!   edge: `use crate::…`, `use super::…`, `use self::…`, a `use` through a
//!   child module, and inline paths in code (`crate::a::b::f()`,
//!   `super::X`, `child::f()`, or through a module brought in by `use`).
//! - A path is followed to the file that *defines* what it names: through
//!   child modules, and through re-exports (`pub use child::X` in
//!   `a/mod.rs` makes `crate::a::X` point at `a/child.rs`). Naming only a
//!   module (`use crate::config;`) is not an edge; naming something through
//!   it (`config::load()`) is.
//! - A parent declaring `mod child;` is not an edge, and neither is a
//!   parent's `pub use child::X` re-export: that is the tree's own façade.
//!   Anything else a parent takes from its child is an edge, as it is the
//!   other way round.
//! - Test code is left out: items under `#[cfg(test)]` and the files
//!   declared under it (`tests.rs`, `*_tests.rs`). Tests sit beside the
//!   code they prove and reach into it from below (`use super::*`) and
//!   across to fixtures; they are built only into the test harness and do
//!   not decide in which order the library's files can be understood.
//! - Names a parent brings in by its own façade (`pub use child::X`, then
//!   `X` used bare in the parent) are not seen: only `use` lines and paths
//!   with `::` are read. Such a parent depends on its child, which is the
//!   expected direction; a child naming its parent back still shows.
//! - The binary (`src/main.rs`, `src/cli.rs`) is another crate that only
//!   names the library, so it cannot close a circle with it.

mod scan;

use scan::{FileScan, UseLeaf};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

#[test]
fn no_import_circle_among_library_files() {
    let tree = ModuleTree::load(Path::new(env!("CARGO_MANIFEST_DIR")));
    let edges = tree.edges();
    let circles = strongly_connected(tree.modules.len(), &edges);
    let problems: Vec<String> = circles.iter().map(|circle| tree.describe(circle, &edges)).collect();
    assert!(problems.is_empty(), "import circles:\n\n{}", problems.join("\n\n"));
}

#[test]
fn circle_check_names_a_circle_drawn_through_a_reexport_but_not_a_facade() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("structure-fixture");
    let files = [
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        // a's façade re-exports its child: not an edge.
        ("src/a/mod.rs", "mod inner;\npub use inner::Deep;\n"),
        ("src/a/inner.rs", "pub struct Deep;\npub fn f() { crate::b::g(); }\n"),
        // b names `crate::a::Deep`, which is defined in a/inner.rs.
        (
            "src/b.rs",
            "use crate::a::Deep;\npub fn g() {}\n#[cfg(test)]\nmod tests { use crate::a::*; }\n",
        ),
    ];
    for (file, text) in files {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let tree = ModuleTree::load(&root);
    let edges = tree.edges();
    let circles = strongly_connected(tree.modules.len(), &edges);
    let named: Vec<Vec<&str>> = circles
        .iter()
        .map(|c| c.iter().map(|&m| tree.modules[m].file.as_str()).collect())
        .collect();
    assert_eq!(named, [["src/a/inner.rs", "src/b.rs"]]);
    let said = tree.describe(&circles[0], &edges);
    assert!(said.contains("src/b.rs:1 `crate::a::Deep` -> src/a/inner.rs"), "{said}");
    assert!(said.contains("src/a/inner.rs:2 `crate::b::g` -> src/b.rs"), "{said}");
}

#[test]
fn scan_leaves_out_comments_strings_and_test_code() {
    let leaf = scan::scan(
        "use super::plan::Plan; // use crate::x::Y;\n\
         #[cfg(test)] mod tests { use crate::z::W; }\n\
         #[cfg(test)]\nmod more_tests;\n\
         pub use child::{self as c, Thing};\n\
         fn f() { let s = \"crate::s::t\"; crate::a::b::f(); }",
    );
    let paths: Vec<String> = leaf.uses.iter().map(|u: &UseLeaf| u.path.join("::")).collect();
    assert_eq!(paths, ["super::plan::Plan", "child", "child::Thing"]);
    assert!(leaf.uses[1].public && leaf.uses[1].name.as_deref() == Some("c"));
    let inline: Vec<String> = leaf.paths.iter().map(|p| p.path.join("::")).collect();
    assert_eq!(inline, ["crate::a::b::f"]);
    assert!(leaf.mods.is_empty(), "a test module is not part of the tree");
}

struct Module {
    /// Relative to the manifest, with `/`: `src/config/plan.rs`.
    file: String,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    scan: FileScan,
}

struct ModuleTree {
    modules: Vec<Module>,
}

/// One file-to-file reference: where it is written and what it says.
#[derive(Clone)]
struct Reference {
    line: usize,
    path: String,
}

type Edges = Vec<BTreeMap<usize, Reference>>;

impl ModuleTree {
    fn load(root: &Path) -> ModuleTree {
        let mut tree = ModuleTree { modules: Vec::new() };
        tree.add(root, root.join("src/lib.rs"), None, true);
        tree
    }

    /// Reads `file` and, depth first, the files of its child modules.
    fn add(&mut self, root: &Path, file: PathBuf, parent: Option<usize>, owns_dir: bool) -> usize {
        let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let scan = scan::scan(&source);
        let relative = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        let index = self.modules.len();
        let decls: Vec<_> = scan.mods.iter().map(|d| (d.name.clone(), d.path.clone())).collect();
        self.modules.push(Module {
            file: relative,
            parent,
            children: BTreeMap::new(),
            scan,
        });
        let here = file.parent().unwrap();
        // `a/mod.rs` and `lib.rs` keep children beside them; `a/b.rs` in `a/b/`.
        let child_dir = if owns_dir {
            here.to_path_buf()
        } else {
            here.join(file.file_stem().unwrap())
        };
        for (name, path_attr) in decls {
            let (child, owns) = match path_attr {
                Some(p) => (here.join(p), false),
                None if child_dir.join(format!("{name}.rs")).exists() => (child_dir.join(format!("{name}.rs")), false),
                None => (child_dir.join(&name).join("mod.rs"), true),
            };
            let child_index = self.add(root, child, Some(index), owns);
            self.modules[index].children.insert(name, child_index);
        }
        index
    }

    /// For every module, the files it names and the first place it does.
    fn edges(&self) -> Edges {
        let mut edges: Edges = vec![BTreeMap::new(); self.modules.len()];
        for (m, module) in self.modules.iter().enumerate() {
            let mut note = |target: usize, line: usize, path: &[String]| {
                if target != m {
                    edges[m].entry(target).or_insert(Reference {
                        line,
                        path: path.join("::"),
                    });
                }
            };
            for leaf in &module.scan.uses {
                let through_child = match leaf.path.as_slice() {
                    [first, ..] if module.children.contains_key(first) => true,
                    [first, second, ..] => first == "self" && module.children.contains_key(second),
                    _ => false,
                };
                if leaf.public && through_child {
                    continue; // the façade's own re-export
                }
                match self.resolve(m, &leaf.path, 0) {
                    Some((target, false)) => note(target, leaf.line, &leaf.path),
                    Some((target, true)) if leaf.name.is_none() => note(target, leaf.line, &leaf.path),
                    _ => {}
                }
            }
            for inline in &module.scan.paths {
                if let Some((target, false)) = self.resolve(m, &inline.path, 0) {
                    note(target, inline.line, &inline.path);
                }
            }
        }
        edges
    }

    /// The file defining what `path`, written in module `m`, names, and
    /// whether the path names that module itself; `None` outside the crate.
    fn resolve(&self, m: usize, path: &[String], depth: usize) -> Option<(usize, bool)> {
        if depth > 16 || path.is_empty() {
            return None;
        }
        let module = &self.modules[m];
        let (start, rest) = match path[0].as_str() {
            "crate" => (0, &path[1..]),
            "self" => (m, &path[1..]),
            "super" => {
                let mut node = m;
                let supers = path.iter().take_while(|s| *s == "super").count();
                for _ in 0..supers {
                    node = self.modules[node].parent?;
                }
                (node, &path[supers..])
            }
            first => match module.children.get(first) {
                Some(&child) => (child, &path[1..]),
                None => {
                    let leaf = self.binding(m, first)?;
                    let full: Vec<String> = leaf.path.iter().chain(&path[1..]).cloned().collect();
                    return self.resolve(m, &full, depth + 1);
                }
            },
        };
        let mut node = start;
        for (i, segment) in rest.iter().enumerate() {
            if let Some(&child) = self.modules[node].children.get(segment) {
                node = child;
                continue;
            }
            if let Some(reexport) = self.binding(node, segment) {
                let full: Vec<String> = reexport.path.iter().chain(&rest[i + 1..]).cloned().collect();
                return self.resolve(node, &full, depth + 1);
            }
            return Some((node, false));
        }
        Some((node, true))
    }

    /// The `use` leaf of module `m` that brings `name` into scope.
    fn binding(&self, m: usize, name: &str) -> Option<&UseLeaf> {
        self.modules[m]
            .scan
            .uses
            .iter()
            .find(|leaf| leaf.name.as_deref() == Some(name))
    }

    /// One circle: its files, a loop through them, then every reference
    /// inside it (the ones to cut are among these).
    fn describe(&self, circle: &[usize], edges: &Edges) -> String {
        let members: BTreeSet<usize> = circle.iter().copied().collect();
        let start = *members.iter().next().unwrap();
        let first = *edges[start].keys().find(|t| members.contains(t)).unwrap();
        let mut route = vec![start];
        route.extend(shortest_path(first, start, edges, &members));
        let step = |from: usize, to: usize| {
            let reference = &edges[from][&to];
            let (file, target) = (&self.modules[from].file, &self.modules[to].file);
            format!("    {file}:{} `{}` -> {target}", reference.line, reference.path)
        };
        let looped: Vec<String> = route.windows(2).map(|pair| step(pair[0], pair[1])).collect();
        let inside: Vec<String> = members
            .iter()
            .flat_map(|&from| {
                edges[from]
                    .keys()
                    .filter(|to| members.contains(to))
                    .map(move |&to| (from, to))
            })
            .map(|(from, to)| step(from, to))
            .collect();
        let files: Vec<&str> = members.iter().map(|&m| self.modules[m].file.as_str()).collect();
        format!(
            "circle among {files:?}
  loop:
{}
  every reference inside:
{}",
            looped.join("\n"),
            inside.join("\n")
        )
    }
}

/// `from` … `to` (both included) inside `members`, by breadth-first search.
fn shortest_path(from: usize, to: usize, edges: &Edges, members: &BTreeSet<usize>) -> Vec<usize> {
    let mut came_from = BTreeMap::from([(from, from)]);
    let mut queue = VecDeque::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            break;
        }
        for &next in edges[node].keys().filter(|n| members.contains(n)) {
            if let std::collections::btree_map::Entry::Vacant(slot) = came_from.entry(next) {
                slot.insert(node);
                queue.push_back(next);
            }
        }
    }
    let mut path = vec![to];
    while *path.last().unwrap() != from {
        path.push(came_from[path.last().unwrap()]);
    }
    path.reverse();
    path
}

/// Tarjan's strongly connected components of more than one node.
fn strongly_connected(count: usize, edges: &Edges) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a Edges,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in s.edges[v].keys() {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort_unstable();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: vec![None; count],
        low: vec![0; count],
        on_stack: vec![false; count],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..count {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.found
}
