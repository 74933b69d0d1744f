//! The loops a provider choice (or a grant) would make among a municipality's providers. A
//! module that provides interface A and is granted the capability of interface B, whose
//! provider is granted A's, would call itself through the other forever: such a
//! configuration is refused when it is written, naming the loop. The check runs on the
//! database's state inside the writing transaction, after it took the routing generation,
//! so two changes racing each other (a grant and a choice) cannot each pass alone and close
//! a loop together. (At run time a provider that reaches the interface it is answering is
//! refused too, as a backstop: `capabilities::provided`.)

use crate::capabilities::Capability;
use crate::catalog::manifest::ProvidedInterface;
use std::collections::{BTreeMap, BTreeSet};

/// Who provides what at one municipality, and what each chosen provider may call
/// (requested ∩ granted), as the database has it.
#[derive(Debug, Default, Clone)]
pub struct Graph {
    pub chosen: BTreeMap<ProvidedInterface, String>,
    pub capabilities: BTreeMap<String, BTreeSet<Capability>>,
}

/// A configuration change to judge before it is written.
pub enum Proposed<'a> {
    /// `interface` provided by this module (none: no module), which may call these.
    Choice(ProvidedInterface, Option<(&'a str, BTreeSet<Capability>)>),
    /// This module may call these (requested ∩ granted).
    Grants(&'a str, BTreeSet<Capability>),
}

/// The loop `graph` would have with `proposed` applied, described for a refusal, or none.
pub fn cycle(mut graph: Graph, proposed: Proposed<'_>) -> Option<String> {
    match proposed {
        Proposed::Choice(interface, Some((module, capabilities))) => {
            graph.chosen.insert(interface, module.to_string());
            graph.capabilities.insert(module.to_string(), capabilities);
        }
        Proposed::Choice(interface, None) => {
            graph.chosen.remove(&interface);
        }
        Proposed::Grants(module, capabilities) => {
            graph.capabilities.insert(module.to_string(), capabilities);
        }
    }
    let Graph { chosen, capabilities } = graph;
    // Interface → the interfaces its provider consumes that a module provides.
    let edges: BTreeMap<ProvidedInterface, Vec<ProvidedInterface>> = chosen
        .iter()
        .map(|(interface, module)| {
            let consumes = capabilities.get(module).cloned().unwrap_or_default();
            (*interface, chosen.keys().copied().filter(|other| consumes.contains(&other.capability())).collect())
        })
        .collect();
    for start in chosen.keys() {
        if let Some(path) = find_path(&edges, *start, *start, &mut BTreeSet::new()) {
            let mut words = Vec::new();
            let mut at = *start;
            for next in path {
                words.push(format!("{} (provided by `{}`, which is granted `{}`)", at.name(), chosen[&at], next.capability().name()));
                at = next;
            }
            words.push(start.name().to_string());
            return Some(words.join(" → "));
        }
    }
    None
}

/// A path of edges from `from` back to `to`, if there is one.
fn find_path(edges: &BTreeMap<ProvidedInterface, Vec<ProvidedInterface>>, from: ProvidedInterface, to: ProvidedInterface, seen: &mut BTreeSet<ProvidedInterface>) -> Option<Vec<ProvidedInterface>> {
    for &next in edges.get(&from).into_iter().flatten() {
        if next == to {
            return Some(vec![next]);
        }
        if seen.insert(next)
            && let Some(mut rest) = find_path(edges, next, to, seen)
        {
            rest.insert(0, next);
            return Some(rest);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProvidedInterface::{Receipts, ResidentRegistry};

    #[test]
    fn loops_are_named_and_breaking_them_is_allowed() {
        let caps = |c: &[Capability]| c.iter().copied().collect::<BTreeSet<_>>();
        let graph = Graph {
            chosen: BTreeMap::from([(ResidentRegistry, "registry-d".to_string())]),
            capabilities: BTreeMap::from([("registry-d".to_string(), caps(&[Capability::Kv, Capability::Receipts]))]),
        };
        let looped = cycle(graph.clone(), Proposed::Choice(Receipts, Some(("receipts-c", caps(&[Capability::ResidentRegistry]))))).unwrap();
        assert_eq!(looped, "receipts (provided by `receipts-c`, which is granted `resident-registry`) → resident-registry (provided by `registry-d`, which is granted `receipts`) → receipts");
        assert_eq!(cycle(graph.clone(), Proposed::Choice(Receipts, Some(("receipts-c", caps(&[Capability::Kv]))))), None);
        assert!(cycle(graph.clone(), Proposed::Grants("registry-d", caps(&[Capability::ResidentRegistry]))).is_some(), "a provider granted its own interface");
        assert_eq!(cycle(graph, Proposed::Choice(ResidentRegistry, None)), None);
    }

    #[test]
    fn paths_back_to_the_start_are_found() {
        let edges = BTreeMap::from([(Receipts, vec![ResidentRegistry]), (ResidentRegistry, vec![Receipts])]);
        assert_eq!(find_path(&edges, Receipts, Receipts, &mut BTreeSet::new()), Some(vec![ResidentRegistry, Receipts]));
        let to_itself = BTreeMap::from([(Receipts, vec![Receipts])]);
        assert_eq!(find_path(&to_itself, Receipts, Receipts, &mut BTreeSet::new()), Some(vec![Receipts]));
        let chain = BTreeMap::from([(Receipts, vec![ResidentRegistry]), (ResidentRegistry, vec![])]);
        assert_eq!(find_path(&chain, Receipts, Receipts, &mut BTreeSet::new()), None);
    }
}
