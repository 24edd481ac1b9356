//! The architecture of the `latchkey` crate, read from its sources (issue 9): no circle of
//! imports between layers or files, nothing below the web layer names it, and no actor
//! message that skips the mailbox's bound (issue 8). Run with `--nocapture` to see the layer
//! order (`layer_order_is_printed`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::sync::OnceLock;

use latchkey_archcheck::{Edge, Graph, load};

/// The layers that may name `crate::http`: the web layer itself and what starts it.
const MAY_NAME_HTTP: &[&str] = &["http", "app", "cli", "main"];

/// At most this many paths are listed for one pair of layers or files.
const SHOWN: usize = 12;

/// The product's graph, read once per test process (`cargo test` runs the tests as threads of
/// one process; nextest gives each its own).
fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let product = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        load(&product).unwrap_or_else(|e| panic!("the product's sources do not read: {e}"))
    })
}

/// Lists the edges, grouped by pair, each with its `file:line`.
fn list(g: &Graph, groups: BTreeMap<(String, String), Vec<&Edge>>) -> String {
    let mut out = String::new();
    for ((a, b), edges) in groups {
        writeln!(out, "  {a} -> {b} ({} paths):", edges.len()).unwrap();
        for e in edges.iter().take(SHOWN) {
            writeln!(out, "    {}", g.describe(e)).unwrap();
        }
        if edges.len() > SHOWN {
            writeln!(out, "    … and {} more", edges.len() - SHOWN).unwrap();
        }
    }
    out
}

#[test]
fn the_sources_are_read() {
    let g = graph();
    for layer in ["store", "http", "domain", "actors"] {
        assert!(
            g.layers.iter().any(|l| l == layer),
            "src/lib.rs declares no `{layer}`: {:?}",
            g.layers
        );
    }
    assert!(g.files.len() > 50, "only {} files were read", g.files.len());
    assert!(
        g.edges.len() > 300,
        "only {} imports were found",
        g.edges.len()
    );
}

#[test]
fn no_circle_between_layers() {
    let g = graph();
    let cycles = g.layer_cycles();
    let mut message = String::new();
    for cycle in &cycles {
        writeln!(message, "circle between the layers {}:", cycle.join(", ")).unwrap();
        let groups = g
            .layer_edges()
            .into_iter()
            .filter(|((a, b), _)| cycle.contains(a) && cycle.contains(b))
            .collect();
        message.push_str(&list(g, groups));
    }
    assert!(cycles.is_empty(), "{message}");
}

#[test]
fn no_circle_between_files() {
    let g = graph();
    let cycles = g.file_cycles();
    let mut message = String::new();
    for cycle in &cycles {
        let names: Vec<&str> = cycle.iter().map(|&f| g.files[f].path.as_str()).collect();
        writeln!(
            message,
            "circle of {} files: {}",
            cycle.len(),
            names.join(", ")
        )
        .unwrap();
        let mut groups: BTreeMap<(String, String), Vec<&Edge>> = BTreeMap::new();
        for e in &g.edges {
            if cycle.contains(&e.from) && cycle.contains(&e.to) {
                let key = (g.files[e.from].path.clone(), g.files[e.to].path.clone());
                groups.entry(key).or_default().push(e);
            }
        }
        message.push_str(&list(g, groups));
    }
    assert!(cycles.is_empty(), "{message}");
}

#[test]
fn only_the_web_layer_and_its_callers_name_http() {
    let g = graph();
    let mut groups: BTreeMap<(String, String), Vec<&Edge>> = BTreeMap::new();
    for e in &g.edges {
        let (from, to) = (&g.files[e.from], &g.files[e.to]);
        let names_http = to.layer() == "http" || e.through.contains("http");
        if names_http && !MAY_NAME_HTTP.contains(&from.layer()) {
            let key = (from.path.clone(), to.path.clone());
            groups.entry(key).or_default().push(e);
        }
    }
    assert!(
        groups.is_empty(),
        "only {} may name crate::http; these do:\n{}",
        MAY_NAME_HTTP.join(", "),
        list(g, groups)
    );
}

#[test]
fn layer_order_is_printed() {
    let g = graph();
    let order = g.layer_order();
    let edges = g.layer_edges();
    println!("layer order (each uses only layers above it; [..] is a circle):");
    for (i, members) in order.iter().enumerate() {
        let uses: Vec<&str> = edges
            .keys()
            .filter(|(a, b)| members.contains(a) && !members.contains(b))
            .map(|(_, b)| b.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let name = if members.len() == 1 {
            members[0].clone()
        } else {
            format!("[{}]", members.join(", "))
        };
        println!("{:3}. {name:<12} uses: {}", i + 1, uses.join(", "));
    }
    assert_eq!(
        order.iter().map(Vec::len).sum::<usize>(),
        g.layer_names().len(),
        "every layer has a place in the order"
    );
}

#[test]
fn no_do_send_or_try_send_on_actor_addresses() {
    let g = graph();
    let calls: Vec<String> = g
        .send_calls
        .iter()
        .map(|c| {
            format!(
                "  {}:{} `{}.{}(…)`",
                g.files[c.file].path, c.line, c.receiver, c.method
            )
        })
        .collect();
    assert!(
        calls.is_empty(),
        "every actor message goes through actors::send or actors::ask, which wait for room in \
         the mailbox; do_send and try_send drop or bypass the bound:\n{}",
        calls.join("\n")
    );
}
