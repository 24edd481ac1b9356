//! The module graph of the `latchkey` crate, read from its sources with `syn`, for the
//! architecture test (`tests/architecture.rs`, issue 9: "no module below the web layer imports
//! the web layer; no circle of imports").
//!
//! - Nodes are files (a file is a module; inline modules belong to their file).
//! - Edges are the paths a file names: `use` declarations, and `crate::…`, `super::…`,
//!   `self::…` paths (or paths that start with a name a `use` brought in) anywhere in the file:
//!   items, expressions, types, attributes (`#[rtype(result = "crate::…")]`), and the tokens of
//!   macro invocations and `macro_rules!` bodies (`$crate::…`). Each is resolved to the file
//!   that defines the item, following `use` and `pub use` re-exports (globs included), and
//!   falling back to the deepest module the path reaches.
//! - Left out: `#[cfg(test)]` items and the files they load, and edges from a module to its
//!   own descendants (a `mod.rs` declaring and re-exporting its children does not depend on
//!   them in the layering sense). A `use` of a module is not an edge by itself: the paths that
//!   go through it are.
//! - Layers are the top-level modules that `src/lib.rs` declares; `main.rs` is the layer
//!   `main`, `lib.rs` the layer `lib`.
//!
//! It also finds `do_send(` and `try_send(` calls on actix addresses (rule of issue 8: every
//! actor message goes through `actors::send`/`ask`, which wait for room in the mailbox).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// A module's path below the crate root (`["store", "accounts"]`); `main.rs` is `["#main"]`.
pub type ModPath = Vec<String>;

const MAIN: &str = "#main";

/// One source file of the crate.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path from the crate's directory: `src/store/accounts.rs`.
    pub path: String,
    /// The module the file is.
    pub module: ModPath,
}

impl SourceFile {
    /// The layer the file belongs to: its top-level module, `lib` or `main`.
    pub fn layer(&self) -> &str {
        match self.module.first() {
            None => "lib",
            Some(m) if m == MAIN => "main",
            Some(m) => m,
        }
    }
}

/// A dependency of one file on another, and the path in the source that causes it.
#[derive(Debug, Clone)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub line: usize,
    /// The path as written (`super::db::Conn`, `crate::http::rentals::format_date`).
    pub text: String,
    /// The layers of the modules the path went through on its way to `to` (re-exports).
    pub through: BTreeSet<String>,
}

/// A call the bounded-mailbox rule forbids.
#[derive(Debug, Clone)]
pub struct SendCall {
    pub file: usize,
    pub line: usize,
    pub method: String,
    pub receiver: String,
}

/// The crate's files, the dependencies between them and its layers.
#[derive(Debug)]
pub struct Graph {
    pub files: Vec<SourceFile>,
    /// Every dependency between two different files, after the exemptions above.
    pub edges: Vec<Edge>,
    /// The top-level modules `lib.rs` declares, in its order.
    pub layers: Vec<String>,
    /// `do_send(…)` and `try_send(…)` calls on what is not known to be a channel sender.
    pub send_calls: Vec<SendCall>,
}

/// Why the sources could not be read.
#[derive(Debug)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

/// Reads the crate whose directory is `crate_dir` (with `src/lib.rs`, and `src/main.rs` if
/// there is one).
pub fn load(crate_dir: &Path) -> Result<Graph, LoadError> {
    build(&|rel: &str| std::fs::read_to_string(crate_dir.join(rel)).ok())
}

/// Builds the graph from sources that `read` returns by path (`src/lib.rs`, …); `None` for a
/// file that does not exist.
pub fn build(read: &dyn Fn(&str) -> Option<String>) -> Result<Graph, LoadError> {
    let mut builder = Builder::default();
    let lib = read("src/lib.rs").ok_or_else(|| LoadError("src/lib.rs is missing".into()))?;
    builder.load_file(read, "src/lib.rs", lib, Vec::new())?;
    if let Some(main) = read("src/main.rs") {
        builder.load_file(read, "src/main.rs", main, vec![MAIN.to_string()])?;
    }
    Ok(builder.finish())
}

#[derive(Debug, Clone)]
struct ItemInfo {
    public: bool,
    /// The file that defines it when it is not the module's (`#[macro_export]` macros live at
    /// the crate root).
    file: Option<usize>,
}

#[derive(Debug, Clone)]
struct UseDecl {
    /// The name it binds; `None` for a glob.
    name: Option<String>,
    path: Vec<String>,
    public: bool,
}

#[derive(Debug, Default)]
struct Module {
    file: usize,
    children: BTreeMap<String, ModPath>,
    items: BTreeMap<String, ItemInfo>,
    uses: Vec<UseDecl>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefKind {
    /// A name a `use` binds (the edge is left to the paths through it if it is a module).
    Use,
    /// `use path::*`.
    Glob,
    /// A path anywhere else.
    Path,
}

#[derive(Debug)]
struct RawRef {
    file: usize,
    module: ModPath,
    segs: Vec<String>,
    line: usize,
    kind: RefKind,
}

#[derive(Debug)]
struct RawSend {
    file: usize,
    line: usize,
    method: String,
    receiver: String,
    args: usize,
}

#[derive(Default)]
struct Builder {
    files: Vec<SourceFile>,
    modules: BTreeMap<ModPath, Module>,
    refs: Vec<RawRef>,
    sends: Vec<RawSend>,
    /// Names (fields, arguments, bindings) whose type is a channel's `…Sender`.
    channel_senders: BTreeSet<String>,
    memo: RefCell<HashMap<BindingKey, Option<Binding>>>,
    /// The bindings being worked out, outermost first, and the outermost of them that one
    /// being worked out asked for meanwhile (its answer then is not final).
    in_progress: RefCell<Vec<BindingKey>>,
    low: Cell<usize>,
}

/// Where a path leads.
#[derive(Debug, Clone)]
struct Resolved {
    file: usize,
    /// Set when the path names a module itself.
    module: Option<ModPath>,
    /// The layers of the modules it went through.
    through: BTreeSet<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    Module(ModPath),
    Item(usize),
    External,
}

/// What a name is in a module.
#[derive(Debug, Clone)]
struct Binding {
    kind: Kind,
    through: BTreeSet<String>,
}

type BindingKey = (ModPath, String, bool);

impl Builder {
    fn load_file(
        &mut self,
        read: &dyn Fn(&str) -> Option<String>,
        path: &str,
        text: String,
        module: ModPath,
    ) -> Result<(), LoadError> {
        let ast = syn::parse_file(&text).map_err(|e| {
            let at = e.span().start();
            LoadError(format!("{path}:{}:{}: {e}", at.line, at.column + 1))
        })?;
        let file = self.files.len();
        self.files.push(SourceFile {
            path: path.to_string(),
            module: module.clone(),
        });
        self.modules.entry(module.clone()).or_default().file = file;
        let mut visitor = FileVisitor {
            b: self,
            file,
            stack: vec![module.clone()],
            file_mods: Vec::new(),
            line_override: None,
        };
        visitor.visit_file(&ast);
        let file_mods = std::mem::take(&mut visitor.file_mods);
        // `src/lib.rs`, `src/main.rs` and `mod.rs` hold their children beside them; `a/b.rs`
        // holds them in `a/b/`.
        let (dir, stem) = path.rsplit_once('/').unwrap_or(("", path));
        let base = match stem {
            "lib.rs" | "main.rs" | "mod.rs" => dir.to_string(),
            _ => format!("{dir}/{}", stem.trim_end_matches(".rs")),
        };
        for (inline, child) in file_mods {
            let name = child.last().cloned().unwrap_or_default();
            let mut dir = base.clone();
            for part in &inline {
                dir = format!("{dir}/{part}");
            }
            let flat = format!("{dir}/{name}.rs");
            let nested = format!("{dir}/{name}/mod.rs");
            let (found, text) = match read(&flat) {
                Some(t) => (flat, t),
                None => match read(&nested) {
                    Some(t) => (nested, t),
                    None => {
                        return Err(LoadError(format!(
                            "{path}: `mod {name};` has neither {flat} nor {nested}"
                        )));
                    }
                },
            };
            self.load_file(read, &found, text, child)?;
        }
        Ok(())
    }

    fn root_of(module: &[String]) -> ModPath {
        match module.first() {
            Some(m) if m == MAIN => vec![MAIN.to_string()],
            _ => Vec::new(),
        }
    }

    /// Resolves `segs` as written in module `from`: the module or the file of the item it
    /// names (the deepest module it reaches when a later name is unknown), and the layers it
    /// went through; `None` for a path outside the crate.
    fn resolve(&self, from: &ModPath, segs: &[String]) -> Option<Resolved> {
        let (first, rest) = segs.split_first()?;
        let (start, rest) = match first.as_str() {
            "crate" | "$crate" => (Self::root_of(from), rest),
            "latchkey" if from.first().is_some_and(|m| m == MAIN) => (Vec::new(), rest),
            "self" => (from.clone(), rest),
            "super" => {
                let mut module = from.clone();
                let mut k = 0;
                while segs.get(k).is_some_and(|s| s == "super") {
                    module.pop();
                    k += 1;
                }
                (module, &segs[k..])
            }
            _ => (from.clone(), segs),
        };
        let relative = rest.len() == segs.len();
        let mut through = BTreeSet::new();
        let mut at = start;
        for (i, name) in rest.iter().enumerate() {
            let name = name.as_str();
            let module = self.modules.get(&at)?;
            match self.binding(&at, name, false) {
                Some(Binding {
                    kind: Kind::Module(m),
                    through: t,
                }) => {
                    through.extend(t);
                    at = m;
                }
                Some(Binding {
                    kind: Kind::Item(file),
                    through: t,
                }) => {
                    through.extend(t);
                    return Some(Resolved {
                        file,
                        module: None,
                        through,
                    });
                }
                // The first name is outside the crate (`fmt::Debug`, `String::new`).
                Some(Binding {
                    kind: Kind::External,
                    ..
                })
                | None
                    if i == 0 && relative =>
                {
                    return None;
                }
                // A name the sources do not define (made by a macro, or external): the module
                // reached so far.
                _ => {
                    return Some(Resolved {
                        file: module.file,
                        module: None,
                        through,
                    });
                }
            }
        }
        let file = self.modules.get(&at)?.file;
        Some(Resolved {
            file,
            module: Some(at),
            through,
        })
    }

    /// What `name` is in module `at`: a module, an item (and the file that defines it), or a
    /// name from outside the crate; `None` when the module has no such name. Only `pub` names
    /// count through a glob (`public_only`). Remembered, and `None` while being worked out (a
    /// glob that comes back to where it started).
    fn binding(&self, at: &ModPath, name: &str, public_only: bool) -> Option<Binding> {
        let key = (at.clone(), name.to_string(), public_only);
        if let Some(known) = self.memo.borrow().get(&key) {
            return known.clone();
        }
        if let Some(depth) = self.in_progress.borrow().iter().position(|k| *k == key) {
            self.low.set(self.low.get().min(depth));
            return None;
        }
        let depth = self.in_progress.borrow().len();
        self.in_progress.borrow_mut().push(key.clone());
        let outer_low = self.low.replace(usize::MAX);
        let found = self.find_binding(at, name, public_only);
        self.in_progress.borrow_mut().pop();
        let low = self.low.get();
        if low >= depth {
            // Nothing it used was still being worked out (but itself): final.
            self.memo.borrow_mut().insert(key, found.clone());
            self.low.set(outer_low);
        } else {
            self.low.set(outer_low.min(low));
        }
        found
    }

    fn find_binding(&self, at: &ModPath, name: &str, public_only: bool) -> Option<Binding> {
        let module = self.modules.get(at)?;
        if let Some(child) = module.children.get(name) {
            return Some(Binding {
                kind: Kind::Module(child.clone()),
                through: child.first().cloned().into_iter().collect(),
            });
        }
        if let Some(item) = module.items.get(name)
            && (!public_only || item.public)
        {
            return Some(Binding {
                kind: Kind::Item(item.file.unwrap_or(module.file)),
                through: BTreeSet::new(),
            });
        }
        let mut named = false;
        for u in &module.uses {
            if u.name.as_deref() == Some(name) && (!public_only || u.public) {
                named = true;
                if let Some(r) = self.resolve(at, &u.path) {
                    let kind = match r.module {
                        Some(m) => Kind::Module(m),
                        None => Kind::Item(r.file),
                    };
                    return Some(Binding {
                        kind,
                        through: r.through,
                    });
                }
            }
        }
        if named {
            return Some(Binding {
                kind: Kind::External,
                through: BTreeSet::new(),
            });
        }
        for u in &module.uses {
            if u.name.is_none()
                && (!public_only || u.public)
                && let Some(Resolved {
                    module: Some(g),
                    through,
                    ..
                }) = self.resolve(at, &u.path)
                && g != *at
                && let Some(mut b) = self.binding(&g, name, true)
                && !matches!(b.kind, Kind::External)
            {
                b.through.extend(through);
                return Some(b);
            }
        }
        None
    }

    fn finish(self) -> Graph {
        let mut edges = Vec::new();
        for r in &self.refs {
            let Some(target) = self.resolve(&r.module, &r.segs) else {
                continue;
            };
            if r.kind == RefKind::Use && target.module.is_some() {
                continue;
            }
            if target.file == r.file {
                continue;
            }
            let from_mod = &self.files[r.file].module;
            let to_mod = &self.files[target.file].module;
            if to_mod.len() > from_mod.len() && to_mod.starts_with(from_mod) {
                continue;
            }
            let through = target.through.into_iter().filter(|m| m != MAIN).collect();
            edges.push(Edge {
                from: r.file,
                to: target.file,
                line: r.line,
                text: r.segs.join("::"),
                through,
            });
        }
        let layers = self
            .modules
            .get(&Vec::new())
            .map(|root| root.children.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        let layers = {
            // `children` is sorted; keep lib.rs's order.
            let mut ordered: Vec<(usize, String)> = layers
                .into_iter()
                .map(|l| {
                    let file = self.modules[&vec![l.clone()]].file;
                    (file, l)
                })
                .collect();
            ordered.sort();
            ordered.into_iter().map(|(_, l)| l).collect()
        };
        let send_calls = self
            .sends
            .iter()
            .filter(|s| {
                s.method == "do_send"
                    || (s.args == 1 && !self.channel_senders.contains(&s.receiver))
            })
            .map(|s| SendCall {
                file: s.file,
                line: s.line,
                method: s.method.clone(),
                receiver: s.receiver.clone(),
            })
            .collect();
        Graph {
            files: self.files,
            edges,
            layers,
            send_calls,
        }
    }
}

struct FileVisitor<'b> {
    b: &'b mut Builder,
    file: usize,
    /// The module being read (inline modules push theirs).
    stack: Vec<ModPath>,
    /// `mod x;` declarations to load: (the inline modules around it, the module).
    file_mods: Vec<(Vec<String>, ModPath)>,
    /// The line of the string literal being read as tokens.
    line_override: Option<usize>,
}

fn is_test_cfg(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && match &a.meta {
                syn::Meta::List(l) => {
                    let t = l.tokens.to_string();
                    t == "test" || (t.starts_with("all") && t.contains("test"))
                }
                _ => false,
            }
    })
}

fn is_public(vis: &syn::Visibility) -> bool {
    !matches!(vis, syn::Visibility::Inherited)
}

fn is_punct(t: Option<&TokenTree>, c: char) -> bool {
    matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c)
}

/// The name a receiver expression ends in: `self.tx` is `tx`, `ctx.address()` is `address`.
fn receiver_name(e: &syn::Expr) -> String {
    match e {
        syn::Expr::Field(f) => match &f.member {
            syn::Member::Named(i) => i.to_string(),
            syn::Member::Unnamed(i) => i.index.to_string(),
        },
        syn::Expr::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        syn::Expr::MethodCall(m) => m.method.to_string(),
        syn::Expr::Reference(r) => receiver_name(&r.expr),
        syn::Expr::Paren(p) => receiver_name(&p.expr),
        _ => String::new(),
    }
}

fn is_sender_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident.to_string().ends_with("Sender")),
        syn::Type::Reference(r) => is_sender_type(&r.elem),
        _ => false,
    }
}

impl FileVisitor<'_> {
    fn module(&self) -> &ModPath {
        self.stack.last().expect("the file's module")
    }

    fn module_mut(&mut self) -> &mut Module {
        let m = self.module().clone();
        self.b.modules.entry(m).or_default()
    }

    fn line(&self, span: proc_macro2::Span) -> usize {
        self.line_override.unwrap_or_else(|| span.start().line)
    }

    fn add_ref(&mut self, segs: Vec<String>, line: usize, kind: RefKind) {
        let module = self.module().clone();
        self.b.refs.push(RawRef {
            file: self.file,
            module,
            segs,
            line,
            kind,
        });
    }

    fn define(&mut self, name: String, public: bool) {
        self.module_mut()
            .items
            .insert(name, ItemInfo { public, file: None });
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree, public: bool) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree, public);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                let (path, bound) = if name == "self" {
                    (prefix.clone(), prefix.last().cloned())
                } else {
                    let mut p = prefix.clone();
                    p.push(name.clone());
                    (p, Some(name))
                };
                self.bind(path, bound, n.ident.span(), public);
            }
            syn::UseTree::Rename(r) => {
                let name = r.ident.to_string();
                let mut path = prefix.clone();
                if name != "self" {
                    path.push(name);
                }
                let bound = Some(r.rename.to_string()).filter(|n| n != "_");
                self.bind(path, bound, r.ident.span(), public);
            }
            syn::UseTree::Glob(g) => {
                let line = self.line(g.star_token.span);
                self.module_mut().uses.push(UseDecl {
                    name: None,
                    path: prefix.clone(),
                    public,
                });
                self.add_ref(prefix.clone(), line, RefKind::Glob);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t, public);
                }
            }
        }
    }

    fn bind(
        &mut self,
        path: Vec<String>,
        bound: Option<String>,
        span: proc_macro2::Span,
        public: bool,
    ) {
        if path.is_empty() {
            return;
        }
        let line = self.line(span);
        if let Some(name) = bound {
            self.module_mut().uses.push(UseDecl {
                name: Some(name),
                path: path.clone(),
                public,
            });
        }
        self.add_ref(path, line, RefKind::Use);
    }

    /// Finds paths (`crate :: a :: b`, `$crate :: a`) and `.do_send(`/`.try_send(` calls in
    /// tokens that `syn` does not parse: macro invocations and `macro_rules!` bodies.
    fn scan_tokens(&mut self, tokens: TokenStream, in_attribute: bool) {
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) => {
                    self.scan_tokens(g.stream(), in_attribute);
                    i += 1;
                }
                TokenTree::Literal(lit) if in_attribute => {
                    let text = lit.to_string();
                    if text.contains("::")
                        && let Ok(s) = syn::parse_str::<syn::LitStr>(&text)
                        && let Ok(inner) = syn::parse_str::<TokenStream>(&s.value())
                    {
                        let saved = self.line_override.replace(lit.span().start().line);
                        self.scan_tokens(inner, false);
                        self.line_override = saved;
                    }
                    i += 1;
                }
                TokenTree::Punct(p) if p.as_char() == '.' => {
                    if let (Some(TokenTree::Ident(method)), Some(TokenTree::Group(args))) =
                        (tts.get(i + 1), tts.get(i + 2))
                        && args.delimiter() == Delimiter::Parenthesis
                        && (method == "do_send" || method == "try_send")
                    {
                        let receiver = match i.checked_sub(1).and_then(|k| tts.get(k)) {
                            Some(TokenTree::Ident(r)) => r.to_string(),
                            _ => String::new(),
                        };
                        let stream = args.stream();
                        let args = if stream.is_empty() {
                            0
                        } else {
                            1 + stream
                                .into_iter()
                                .filter(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
                                .count()
                        };
                        let line = self.line(method.span());
                        self.b.sends.push(RawSend {
                            file: self.file,
                            line,
                            method: method.to_string(),
                            receiver,
                            args,
                        });
                    }
                    i += 1;
                }
                TokenTree::Ident(id) => {
                    let prev = i.checked_sub(1).and_then(|k| tts.get(k));
                    let before = i.checked_sub(2).and_then(|k| tts.get(k));
                    // Not the middle of a path (`a::b`) nor a field or method (`x.b`); a
                    // single `:` (`"key": crate::a::b` in `json!`) starts one.
                    if (is_punct(prev, ':') && is_punct(before, ':')) || is_punct(prev, '.') {
                        i += 1;
                        continue;
                    }
                    let first = if is_punct(prev, '$') && id == "crate" {
                        "$crate".to_string()
                    } else {
                        id.to_string()
                    };
                    let mut segs = vec![first];
                    let mut j = i + 1;
                    while is_punct(tts.get(j), ':') && is_punct(tts.get(j + 1), ':') {
                        match tts.get(j + 2) {
                            Some(TokenTree::Ident(next)) => {
                                segs.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segs.len() >= 2 {
                        let line = self.line(id.span());
                        self.add_ref(segs, line, RefKind::Path);
                    }
                    i = j;
                }
                _ => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for FileVisitor<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        use syn::Item;
        if is_test_cfg(match item {
            Item::Const(i) => &i.attrs,
            Item::Enum(i) => &i.attrs,
            Item::ExternCrate(i) => &i.attrs,
            Item::Fn(i) => &i.attrs,
            Item::ForeignMod(i) => &i.attrs,
            Item::Impl(i) => &i.attrs,
            Item::Macro(i) => &i.attrs,
            Item::Mod(i) => &i.attrs,
            Item::Static(i) => &i.attrs,
            Item::Struct(i) => &i.attrs,
            Item::Trait(i) => &i.attrs,
            Item::TraitAlias(i) => &i.attrs,
            Item::Type(i) => &i.attrs,
            Item::Union(i) => &i.attrs,
            Item::Use(i) => &i.attrs,
            _ => return,
        }) {
            return;
        }
        match item {
            Item::Const(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::Enum(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::ExternCrate(i) => {
                let name = i.rename.as_ref().map_or(&i.ident, |(_, r)| r);
                self.define(name.to_string(), is_public(&i.vis));
            }
            Item::Fn(i) => self.define(i.sig.ident.to_string(), is_public(&i.vis)),
            Item::Static(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::Struct(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::Trait(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::TraitAlias(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::Type(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::Union(i) => self.define(i.ident.to_string(), is_public(&i.vis)),
            Item::Macro(i) => {
                if let Some(name) = &i.ident {
                    let exported = i.attrs.iter().any(|a| a.path().is_ident("macro_export"));
                    if exported {
                        let root = Builder::root_of(self.module());
                        let file = self.file;
                        self.b.modules.entry(root).or_default().items.insert(
                            name.to_string(),
                            ItemInfo {
                                public: true,
                                file: Some(file),
                            },
                        );
                    } else {
                        self.define(name.to_string(), false);
                    }
                }
            }
            Item::Use(u) => {
                for a in &u.attrs {
                    self.visit_attribute(a);
                }
                if u.leading_colon.is_none() {
                    self.use_tree(&mut Vec::new(), &u.tree, is_public(&u.vis));
                }
                return;
            }
            Item::Mod(m) => {
                for a in &m.attrs {
                    self.visit_attribute(a);
                }
                let mut child = self.module().clone();
                child.push(m.ident.to_string());
                self.module_mut()
                    .children
                    .insert(m.ident.to_string(), child.clone());
                match &m.content {
                    Some((_, items)) => {
                        self.b.modules.entry(child.clone()).or_default().file = self.file;
                        self.stack.push(child);
                        for i in items {
                            self.visit_item(i);
                        }
                        self.stack.pop();
                    }
                    None => {
                        let file_module = &self.stack[0];
                        let inline = self.module()[file_module.len()..].to_vec();
                        self.file_mods.push((inline, child));
                    }
                }
                return;
            }
            _ => {}
        }
        visit::visit_item(self, item);
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Const(i) => &i.attrs,
            syn::ImplItem::Fn(i) => &i.attrs,
            syn::ImplItem::Type(i) => &i.attrs,
            syn::ImplItem::Macro(i) => &i.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !is_test_cfg(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        let attrs = match item {
            syn::TraitItem::Const(i) => &i.attrs,
            syn::TraitItem::Fn(i) => &i.attrs,
            syn::TraitItem::Type(i) => &i.attrs,
            syn::TraitItem::Macro(i) => &i.attrs,
            _ => return visit::visit_trait_item(self, item),
        };
        if !is_test_cfg(attrs) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() && path.segments.len() >= 2 {
            let segs = path.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = self.line(path.segments[0].ident.span());
            self.add_ref(segs, line, RefKind::Path);
        }
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        self.scan_tokens(mac.tokens.clone(), false);
    }

    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        if attr.path().is_ident("doc") {
            return;
        }
        match &attr.meta {
            syn::Meta::Path(p) => self.visit_path(p),
            syn::Meta::List(l) => {
                self.visit_path(&l.path);
                self.scan_tokens(l.tokens.clone(), true);
            }
            syn::Meta::NameValue(nv) => {
                self.visit_path(&nv.path);
                self.visit_expr(&nv.value);
            }
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let method = call.method.to_string();
        if method == "do_send" || method == "try_send" {
            let line = self.line(call.method.span());
            self.b.sends.push(RawSend {
                file: self.file,
                line,
                method,
                receiver: receiver_name(&call.receiver),
                args: call.args.len(),
            });
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if let Some(name) = &field.ident
            && is_sender_type(&field.ty)
        {
            self.b.channel_senders.insert(name.to_string());
        }
        visit::visit_field(self, field);
    }

    fn visit_pat_type(&mut self, pat: &'ast syn::PatType) {
        if let syn::Pat::Ident(i) = &*pat.pat
            && is_sender_type(&pat.ty)
        {
            self.b.channel_senders.insert(i.ident.to_string());
        }
        visit::visit_pat_type(self, pat);
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        // `let (tx, rx) = mpsc::channel(…);`
        if let syn::Pat::Tuple(t) = &local.pat
            && let Some(syn::Pat::Ident(tx)) = t.elems.first()
            && let Some(init) = &local.init
            && let syn::Expr::Call(c) = &*init.expr
            && let syn::Expr::Path(f) = &*c.func
            && f.path
                .segments
                .last()
                .is_some_and(|s| s.ident.to_string().contains("channel"))
        {
            self.b.channel_senders.insert(tx.ident.to_string());
        }
        visit::visit_local(self, local);
    }
}

/// A strongly connected component of a graph: the nodes of one circle of dependencies.
pub fn strongly_connected(nodes: usize, edges: &BTreeSet<(usize, usize)>) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        next: Vec<Vec<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        out: &'a mut Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.counter);
            self.low[v] = self.counter;
            self.counter += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for k in 0..self.next[v].len() {
                let w = self.next[v][k];
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(i) if self.on_stack[w] => self.low[v] = self.low[v].min(i),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                self.out.push(component);
            }
        }
    }
    let mut next = vec![Vec::new(); nodes];
    for &(a, b) in edges {
        next[a].push(b);
    }
    let mut out = Vec::new();
    let mut t = Tarjan {
        next,
        index: vec![None; nodes],
        low: vec![0; nodes],
        on_stack: vec![false; nodes],
        stack: Vec::new(),
        counter: 0,
        out: &mut out,
    };
    for v in 0..nodes {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    out
}

impl Graph {
    /// The file `src/…` is.
    pub fn file(&self, path: &str) -> Option<usize> {
        self.files.iter().position(|f| f.path == path)
    }

    /// The layers: those `lib.rs` declares, then `main` if there is a `main.rs` (`lib.rs`
    /// itself only declares the layers).
    pub fn layer_names(&self) -> Vec<String> {
        let mut names = self.layers.clone();
        if self.files.iter().any(|f| f.layer() == "main") {
            names.push("main".to_string());
        }
        names
    }

    /// The edges between files of different layers, by (from layer, to layer).
    pub fn layer_edges(&self) -> BTreeMap<(String, String), Vec<&Edge>> {
        let mut out: BTreeMap<(String, String), Vec<&Edge>> = BTreeMap::new();
        for e in &self.edges {
            let (a, b) = (self.files[e.from].layer(), self.files[e.to].layer());
            if a != b {
                out.entry((a.to_string(), b.to_string()))
                    .or_default()
                    .push(e);
            }
        }
        out
    }

    /// Circles between layers: each the layers of one strongly connected component.
    pub fn layer_cycles(&self) -> Vec<Vec<String>> {
        let names = self.layer_names();
        let index = |l: &str| names.iter().position(|n| n == l);
        let pairs: BTreeSet<(usize, usize)> = self
            .layer_edges()
            .keys()
            .filter_map(|(a, b)| Some((index(a)?, index(b)?)))
            .collect();
        strongly_connected(names.len(), &pairs)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| c.into_iter().map(|i| names[i].clone()).collect())
            .collect()
    }

    /// Circles between files: each the files of one strongly connected component.
    pub fn file_cycles(&self) -> Vec<Vec<usize>> {
        let pairs: BTreeSet<(usize, usize)> = self.edges.iter().map(|e| (e.from, e.to)).collect();
        strongly_connected(self.files.len(), &pairs)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect()
    }

    /// The layers in an order where each uses only those before it; the layers of a circle
    /// come together as one entry.
    pub fn layer_order(&self) -> Vec<Vec<String>> {
        let names = self.layer_names();
        let index = |l: &str| names.iter().position(|n| n == l);
        let pairs: BTreeSet<(usize, usize)> = self
            .layer_edges()
            .keys()
            .filter_map(|(a, b)| Some((index(a)?, index(b)?)))
            .collect();
        let components = strongly_connected(names.len(), &pairs);
        let mut component_of = vec![0; names.len()];
        for (c, members) in components.iter().enumerate() {
            for &m in members {
                component_of[m] = c;
            }
        }
        let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); components.len()];
        for &(a, b) in &pairs {
            if component_of[a] != component_of[b] {
                deps[component_of[a]].insert(component_of[b]);
            }
        }
        // Kahn's algorithm, taking the ready layers by name so the order is stable.
        let mut done = vec![false; components.len()];
        let mut order = Vec::new();
        while order.len() < components.len() {
            let mut ready: Vec<(Vec<String>, usize)> = (0..components.len())
                .filter(|&c| !done[c] && deps[c].iter().all(|&d| done[d]))
                .map(|c| {
                    let mut n: Vec<String> =
                        components[c].iter().map(|&i| names[i].clone()).collect();
                    n.sort();
                    (n, c)
                })
                .collect();
            ready.sort();
            let Some((members, c)) = ready.into_iter().next() else {
                break;
            };
            done[c] = true;
            order.push(members);
        }
        order
    }

    /// `src/a.rs:12 super::db::Conn -> src/b.rs`.
    pub fn describe(&self, e: &Edge) -> String {
        format!(
            "{}:{} `{}` -> {}",
            self.files[e.from].path, e.line, e.text, self.files[e.to].path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> Graph {
        let files: BTreeMap<String, String> = files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        build(&|p: &str| files.get(p).cloned()).expect("the sources parse")
    }

    fn edges(g: &Graph) -> BTreeSet<(String, String)> {
        g.edges
            .iter()
            .map(|e| (g.files[e.from].path.clone(), g.files[e.to].path.clone()))
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn paths_in_code_types_macros_and_attributes_are_edges() {
        let g = graph(&[
            (
                "src/lib.rs",
                "pub mod a; pub mod b; pub mod c; pub mod d; pub mod e;",
            ),
            (
                "src/a.rs",
                "pub fn f() -> String { format!(\"{}\", crate::b::g()) }",
            ),
            ("src/b.rs", "pub fn g() -> crate::c::T { todo!() }"),
            (
                "src/c.rs",
                "pub struct T; #[rtype(result = \"crate::d::U\")] pub struct M;",
            ),
            (
                "src/d.rs",
                "pub struct U; pub fn h() { let _ = crate::e::V::new(); }",
            ),
            ("src/e.rs", "pub struct V;"),
        ]);
        let found = edges(&g);
        for (a, b) in [
            ("src/a.rs", "src/b.rs"),
            ("src/b.rs", "src/c.rs"),
            ("src/c.rs", "src/d.rs"),
            ("src/d.rs", "src/e.rs"),
        ] {
            assert!(found.contains(&pair(a, b)), "{a} -> {b} missing: {found:?}");
        }
        assert_eq!(found.len(), 4, "{found:?}");
        let e = g.edges.iter().find(|e| e.text == "crate::d::U").unwrap();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn re_exports_lead_to_the_defining_file_and_parents_do_not_depend_on_children() {
        let g = graph(&[
            ("src/lib.rs", "pub mod store; pub mod web;"),
            (
                "src/store/mod.rs",
                "mod rows; mod users; pub use rows::*; pub use users::load;\n\
                 pub struct Store; impl Store { pub fn f(&self) { users::load(); } }",
            ),
            ("src/store/rows.rs", "pub struct Row; fn private() {}"),
            (
                "src/store/users.rs",
                "use super::Store;\nuse super::Row;\npub fn load() {}",
            ),
            ("src/web.rs", "use crate::store;\nfn x() { store::load(); }"),
        ]);
        let found = edges(&g);
        assert!(found.contains(&pair("src/store/users.rs", "src/store/mod.rs")));
        assert!(found.contains(&pair("src/store/users.rs", "src/store/rows.rs")));
        assert!(found.contains(&pair("src/web.rs", "src/store/users.rs")));
        assert!(!found.contains(&pair("src/store/mod.rs", "src/store/users.rs")));
        assert!(
            !found.contains(&pair("src/web.rs", "src/store/mod.rs")),
            "{found:?}"
        );
        assert!(g.file_cycles().is_empty());
    }

    #[test]
    fn circles_between_files_and_layers_are_found() {
        let g = graph(&[
            ("src/lib.rs", "pub mod low; pub mod high; pub mod base;"),
            ("src/low.rs", "pub fn a() { crate::high::b() }"),
            ("src/high.rs", "use crate::low::a;\npub fn b() { a() }"),
            ("src/base.rs", "pub fn c() {}"),
        ]);
        assert_eq!(g.file_cycles().len(), 1);
        assert_eq!(
            g.layer_cycles(),
            vec![vec!["low".to_string(), "high".to_string()]]
        );
        assert_eq!(
            g.layer_order(),
            vec![vec!["base".to_string()], vec!["high".into(), "low".into()]]
        );
    }

    #[test]
    fn test_modules_and_external_paths_are_left_out() {
        let g = graph(&[
            ("src/lib.rs", "pub mod a; pub mod b;"),
            (
                "src/a.rs",
                "use std::fmt;\nfn f() { fmt::Debug; }\n#[cfg(test)]\nmod tests { use crate::b::X; }\n\
                 #[cfg(test)] mod more;",
            ),
            ("src/b.rs", "pub struct X;"),
        ]);
        assert!(g.edges.is_empty(), "{:?}", g.edges);
    }

    #[test]
    fn macro_rules_bodies_and_exported_macros_count() {
        let g = graph(&[
            ("src/lib.rs", "pub mod a; pub mod b; pub mod c;"),
            (
                "src/a.rs",
                "#[macro_export]\nmacro_rules! m { () => { $crate::c::Y } }",
            ),
            ("src/b.rs", "use crate::m;\nfn f() { m!() }"),
            ("src/c.rs", "pub struct Y;"),
        ]);
        let found = edges(&g);
        assert!(found.contains(&pair("src/b.rs", "src/a.rs")), "{found:?}");
        assert!(found.contains(&pair("src/a.rs", "src/c.rs")), "{found:?}");
    }

    #[test]
    fn do_send_and_try_send_on_addresses_are_found_but_not_on_channels() {
        let g = graph(&[
            ("src/lib.rs", "pub mod a;"),
            (
                "src/a.rs",
                "struct S { tx: mpsc::Sender<u8>, addr: actix::Addr<A> }\n\
                 impl S {\n\
                   fn f(&self) { self.tx.try_send(1); self.addr.do_send(M); }\n\
                   fn g(&self) { self.addr.try_send(M); self.try_send(a, b, c); }\n\
                   fn h(&self) { let (tx2, rx) = mpsc::channel(1); tx2.try_send(1); }\n\
                   fn i(&self) { println!(\"{:?}\", self.addr.do_send(M)); }\n\
                 }",
            ),
        ]);
        let found: Vec<(usize, &str)> = g
            .send_calls
            .iter()
            .map(|s| (s.line, s.method.as_str()))
            .collect();
        assert_eq!(found, vec![(3, "do_send"), (4, "try_send"), (6, "do_send")]);
    }
}
